// node-worker: a background worker (what a Procfile's `worker:` process runs) that serves nothing. Deployed with
// -p by mistake, nothing ever listens on the published port: the listener check reports E_NOT_LISTENING once the
// listen deadline passes, and `deploy --wait` does not call it running and healthy.
'use strict';

let jobs = 0;
const timer = setInterval(() => console.log(`node-worker: processed job ${++jobs}`), 2000);
console.log('node-worker started: polling for jobs, no HTTP server');

process.on('SIGTERM', () => {
  clearInterval(timer);
  console.log(`node-worker: SIGTERM after ${jobs} jobs`);
  process.exit(0);
});
