# gunicorn reads ./gunicorn.conf.py (the VM's working directory is /app). No shell in the image: $PORT is read here.
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"  # one line per request on stdout: `unikctl logs`
errorlog = "-"
# the root filesystem is read-only: gunicorn's worker heartbeat files go to the tmpfs
worker_tmp_dir = "/dev/shm"
