// Fixture workspaces for the workspace page's tests (workspace_fixture.js).

const WORKER = "host7:4121:2026-01-01";

/** @type {Record<string, (fake: any, params: URLSearchParams) => string>} */
export const SCENARIOS = {
  /** A deploy with details, a held mutex, a catch and a release, and some log lines. */
  basic(fake) {
    const name = "deploy-prod";
    fake.append(name, [
      { payload: { kind: "presence", run_id: WORKER, state: "connected", client: "pierhead-py/0.1" } },
      { payload: { kind: "details", details: { workflow: "ShipIt", deployment_url: "https://ci.example/build/7" } } },
      { payload: { kind: "semaphores", has_mutex: true, holder: WORKER, fence: 1 } },
      { payload: { kind: "log", message: "TASK [restart] ok", level: "info" }, run_id: WORKER, seq: 1 },
      { payload: { kind: "semaphores", caught: true, has_mutex: true, holder: WORKER, fence: 1, by: "alice", reason: "db-3 looks odd" } },
      { payload: { kind: "log", message: "waiting while caught", level: "warning" }, run_id: WORKER, seq: 2 },
      { payload: { kind: "semaphores", caught: false, has_mutex: true, holder: WORKER, fence: 1, by: "bob" } },
      { payload: { kind: "event", message: "db-3 done", severity: "success" }, run_id: WORKER, seq: 3 },
      { payload: { kind: "status", key: "phase", value: "deploying" }, run_id: WORKER, seq: 4 },
      { payload: { kind: "log", message: "disk almost full", level: "error" }, run_id: WORKER, seq: 5 },
    ]);
    return name;
  },

  /** `lines` log lines (default 100,000), with retention below `retained` when given. */
  big(fake, params) {
    const name = "train-big";
    const lines = Number(params.get("lines") ?? 100_000);
    const items = [];
    for (let index = 1; index <= lines; index += 1) {
      items.push({
        payload: { kind: "log", message: `line ${index}`, level: index % 10 === 0 ? "error" : "info" },
        run_id: WORKER,
        seq: index,
      });
    }
    fake.append(name, items);
    const retained = params.get("retained");
    if (retained !== null) {
      fake.retain(name, Number(retained) - 1);
    }
    return name;
  },

  /** Every string a worker controls holds markup or a script URL. */
  hostile(fake) {
    const name = "hostile";
    const script = "<script>alert('xss')</script>";
    const image = "<img src=x onerror=alert('xss')>";
    fake.append(name, [
      { payload: { kind: "presence", run_id: WORKER, state: "connected", client: image,
        actions: [{ name: "x", description: script }] } },
      { payload: { kind: "details", details: {
        deployment_url: "javascript:alert('xss')", workflow: script, current_host: image } } },
      { payload: { kind: "event", message: image, severity: "error" }, run_id: WORKER, seq: 1 },
      { payload: { kind: "log", message: script, level: "error", logger: image }, run_id: WORKER, seq: 2 },
      { payload: { kind: "status", key: "phase", value: "javascript:alert('xss')" }, run_id: WORKER, seq: 3 },
      { payload: { kind: "semaphores", caught: true, by: image, reason: script } },
    ]);
    return name;
  },
};
