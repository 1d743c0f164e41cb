// Runs the test module named by ?module= and writes its results into #results as JSON, with
// data-state "done" (the module ran; each case says whether it passed) or "crashed".

const TEST_MODULE = /^[a-z][a-z0-9_]*\.test\.js$/;

const output = document.getElementById("results");

/** @param {string} state @param {string} text */
function finish(state, text) {
  output.textContent = text;
  output.dataset.state = state;
}

async function main() {
  const name = new URL(window.location.href).searchParams.get("module") ?? "";
  if (!TEST_MODULE.test(name)) {
    finish("crashed", `not a test module name: ${JSON.stringify(name)}`);
    return;
  }
  try {
    const module = await import(`./${name}`);
    const results = await module.run();
    finish("done", JSON.stringify(results));
  } catch (error) {
    finish("crashed", error instanceof Error ? `${error}\n${error.stack}` : String(error));
  }
}

main();
