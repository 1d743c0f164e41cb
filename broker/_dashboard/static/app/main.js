// The page's entry point. The views, the connection and the fold are modules of their own;
// until the views land this only says which page this is.

const app = document.getElementById("app");
if (app !== null) {
  app.textContent = "pierhead dashboard";
}
