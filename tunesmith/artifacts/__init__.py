"""Each artifact on disk has one module that writes and reads it: run_dir (training runs), eval_dir (evals)."""
