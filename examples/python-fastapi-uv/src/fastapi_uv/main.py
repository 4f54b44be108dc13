"""fastapi-uv: FastAPI (pydantic v2, whose core is a compiled Rust extension) served by uvicorn on uvloop and
httptools (two more compiled extensions). `serve` is the project's console script: the python pack starts it.
Listens on $PORT (default 8080); uvicorn's access log goes to stdout, hence to `unikctl logs`.
"""
import os
import platform
import socket

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="fastapi-uv")


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
def root() -> dict[str, str]:
    return {"app": "fastapi-uv", "host": socket.gethostname(), "python": platform.python_version()}


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


@app.post("/items")
def create_item(item: Item) -> dict[str, object]:
    return {"created": item.model_dump(), "total": item.price * 1.2}


def serve() -> None:
    port = int(os.environ.get("PORT", "8080"))
    print(f"fastapi-uv listening on :{port}", flush=True)
    # no colours: the log is a serial console read by `unikctl logs`, not a terminal
    uvicorn.run(app, host="0.0.0.0", port=port, loop="uvloop", http="httptools", proxy_headers=False, use_colors=False)


if __name__ == "__main__":
    serve()
