"""The OpenAI-compatible API: one router per resource, mounted under `/v1` and, for Azure clients, `/openai`."""

from __future__ import annotations

from fastapi import APIRouter

from tunesmith.server import chat_api, files_api, graders_api, jobs_api, models_api


def openai_router() -> APIRouter:
    """files, fine_tuning/jobs, fine_tuning/alpha/graders, models and chat/completions, as the official SDK calls them."""
    router = APIRouter()
    for module in (files_api, jobs_api, graders_api, models_api, chat_api):
        router.include_router(module.router)
    return router


def azure_router() -> APIRouter:
    """What `openai.AzureOpenAI` adds: chat under `/deployments/{name}`; files and jobs keep OpenAI's paths."""
    router = openai_router()
    router.include_router(chat_api.azure_router)
    return router
