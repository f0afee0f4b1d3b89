"""Prefect flows: the thin orchestration edge around crawl2chat's stages."""
