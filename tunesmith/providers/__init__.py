"""Provider models: fine-tune and evaluate OpenAI / Azure OpenAI models through their own APIs.

config.py (providers.json, keys from the environment), client.py (the SDK client, retries), preflight.py
(local validation against the model's token limit), remote_train.py (a provider job followed into a run
directory). Generation through a provider for evaluations is tunesmith/generation/remote.py.
"""
