"""fastapi-uv: a FastAPI app for unikctl's python pack (see main.py)."""
