// Cleanup that must run however a test process ends (a normal exit, SIGINT or SIGTERM from
// the runner's time limit): namespaces, devices, temp folders. One hook for every user.

const pending = new Set<() => void>();
let hooked = false;

function runAll(): void {
  for (const fn of [...pending]) {
    pending.delete(fn);
    try {
      fn();
    } catch {
      // the others still run
    }
  }
}

/** Runs `fn` when the process ends, unless the returned function is called first. */
export function cleanupOnExit(fn: () => void): () => void {
  if (!hooked) {
    hooked = true;
    process.on('exit', runAll);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        runAll();
        process.exit(1);
      });
    }
  }
  pending.add(fn);
  return () => void pending.delete(fn);
}
