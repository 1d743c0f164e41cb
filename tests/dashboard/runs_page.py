"""Reading the run views back from a live page: the columns a chart draws, by line label.

A chart is ``<figure class="run-chart" data-chart=NAME>`` whose ``uplot`` property is the uPlot
instance (app/views/chart.js): ``uplot.data`` is ``[xs, ys of line 0, ...]`` and
``uplot.series[i + 1].label`` names line ``i`` (a run id, or ``<run> (smoothed)``).
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page

CHART_JS = """
(name) => {
  const figure = [...document.querySelectorAll("figure.run-chart")]
    .find((f) => f.dataset.chart === name);
  if (figure === undefined || figure.uplot === undefined) return null;
  const chart = figure.uplot;
  const lines = {};
  chart.series.slice(1).forEach((series, index) => {
    lines[series.label] = chart.data[index + 1];
  });
  return {
    xs: chart.data[0], lines, x: {min: chart.scales.x.min, max: chart.scales.x.max},
    log: chart.scales.y.distr === 3,
  };
}
"""


async def chart(page: Page, name: str) -> dict[str, Any] | None:
    """The chart ``name`` as ``{xs, lines: {label: ys}, x: {min, max}, log}``, or None if
    absent (``log``: the y axis is logarithmic)."""
    result: dict[str, Any] | None = await page.evaluate(CHART_JS, name)
    return result


async def wait_for_chart(page: Page, name: str, points: int, labels: list[str]) -> dict[str, Any]:
    """The chart ``name`` once it draws ``points`` xs and exactly the lines ``labels``."""
    await page.wait_for_function(
        f"([name, points, labels]) => {{ const c = ({CHART_JS})(name);"
        " return c !== null && c.xs.length === points"
        " && JSON.stringify(Object.keys(c.lines).sort()) === JSON.stringify([...labels].sort()); }",
        arg=[name, points, labels],
    )
    found = await chart(page, name)
    assert found is not None
    return found
