"""python-numpy: a Starlette app whose routes compute with numpy (compiled extensions + the OpenBLAS it bundles)."""
import numpy as np
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


def blas_name():
    # numpy's build configuration names the BLAS it links (scipy-openblas for the PyPI wheels)
    deps = np.show_config(mode="dicts").get("Build Dependencies", {})
    return deps.get("blas", {}).get("name", "unknown")


async def stats(request):
    raw = request.query_params.get("values", "1,2,3,4")
    try:
        values = np.array([float(v) for v in raw.split(",") if v.strip()])
    except ValueError:
        return JSONResponse({"error": f"values must be numbers: {raw}"}, status_code=400)
    return JSONResponse({
        "framework": "starlette",
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "sorted": np.sort(values).tolist(),
    })


async def solve(request):
    # LAPACK (dgesv) and BLAS (dgemm) calls: they run in the OpenBLAS library from numpy.libs/
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([9.0, 8.0])
    x = np.linalg.solve(a, b)
    m = np.arange(64 * 64, dtype=np.float64).reshape(64, 64)
    return JSONResponse({
        "x": x.round(6).tolist(),
        "check": bool(np.allclose(a @ x, b)),
        "trace": float(np.trace(m @ m.T)),
        "blas": blas_name(),
        "numpy": np.__version__,
    })


app = Starlette(routes=[Route("/stats", stats), Route("/solve", solve)])
