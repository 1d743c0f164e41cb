// The run views' and actions panel's stylesheet (app/runs.css), linked once from the modules
// that need it, so the page's own index.html does not have to know about it.

const HREF = new URL("../runs.css", import.meta.url).href;

/** Add the stylesheet's <link> to the document head unless it is there. */
export function linkRunsStylesheet() {
  if (document.querySelector(`link[data-runs-stylesheet]`) !== null) {
    return;
  }
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = HREF;
  link.dataset.runsStylesheet = "";
  document.head.append(link);
}
