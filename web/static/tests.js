// Test runner page: list suites, start one (mock or live), follow its progress, show pass/fail per
// step with links into the run inspector, and the history of suite runs.
import { api, el } from "./common.js";

const suitesList = document.getElementById("suites");
const modeSelect = document.getElementById("suite-mode");
const errorBox = document.getElementById("tests-error");
const current = document.getElementById("current");
const POLL_MS = 300;

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

function listOf(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const key of keys) if (Array.isArray(data[key])) return data[key];
  return [];
}

async function loadSuites() {
  const suites = listOf(await api("/v1/test-suites"), "suites", "test_suites");
  suitesList.replaceChildren(...suites.map(suiteItem));
  if (!suites.length) suitesList.append(el("li", { className: "muted small", text: "No suites found." }));
  suitesList.removeAttribute("aria-busy");
}

function suiteItem(suite) {
  const steps = suite.steps ?? suite.step_count;
  const count = Array.isArray(steps) ? steps.length : steps;
  const button = el("button", { type: "button", className: "run-suite", text: "Run", dataset: { suite: suite.name } });
  button.addEventListener("click", () => start(suite.name).catch((e) => showError(String(e.message || e))));
  return el("li", { className: "suite", dataset: { suite: suite.name } }, [
    el("div", {}, [
      el("strong", { className: "suite-name", text: suite.name }),
      el("span", { className: "muted small", text: count !== undefined ? ` · ${count} steps` : "" }),
      el("div", { className: "muted small", text: suite.description || suite.title || "" }),
    ]),
    button,
  ]);
}

// One suite at a time from this page: Run is disabled while the followed run is running.
function setRunning(running) {
  for (const button of document.querySelectorAll("button.run-suite")) button.disabled = running;
}

async function start(name) {
  showError("");
  setRunning(true);
  try {
    const started = await api("/v1/test-runs", { method: "POST", body: { suite: name, mode: modeSelect.value } });
    history.replaceState(null, "", `/ui/tests?run=${encodeURIComponent(started.id)}`);
    showRun({ ...started, steps: [], passed: 0, failed: 0 }); // not the previous suite's result
    await loadHistory();
    await follow(started.id);
  } finally {
    setRunning(false);
  }
  await loadHistory();
}

let following = 0; // only the latest followed run updates the page

async function follow(id) {
  const mine = ++following;
  for (;;) {
    let run;
    try {
      run = await api(`/v1/test-runs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (mine === following) notFound(id, error);
      return null;
    }
    if (mine !== following) return run;
    showRun(run);
    setRunning(run.status === "running");
    if (run.status !== "running") return run;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function notFound(id, error) {
  current.hidden = true;
  showError(`No test run ${id} to show: ${error.message || error}`);
}

// Counts from the finished steps: the run's own totals are written when it ends.
function counts(run) {
  const steps = run.steps || [];
  return {
    passed: Math.max(run.passed ?? 0, steps.filter((s) => s.passed === true).length),
    failed: Math.max(run.failed ?? 0, steps.filter((s) => s.passed === false).length),
  };
}

function showRun(run) {
  current.hidden = false;
  current.dataset.id = run.id;
  current.dataset.status = run.status;
  document.getElementById("current-title").textContent = `${run.suite} (${run.mode})`;
  const status = document.getElementById("current-status");
  status.textContent = run.status;
  status.className = `pill tr-${run.status}`;
  const done = (run.steps || []).length;
  const total = run.steps_total ?? done;
  const { passed, failed } = counts(run);
  const text = `${done}/${total} steps · ${passed} passed · ${failed} failed`;
  document.getElementById("current-counts").textContent = run.error ? `${text} · ${run.error}` : text;
  document.getElementById("steps").replaceChildren(...(run.steps || []).map(stepItem));
  const row = document.querySelector(`#test-history tr[data-id="${CSS.escape(String(run.id))}"]`);
  if (row) row.replaceWith(historyRow({ ...run, passed, failed })); // the history keeps up
}

function stepItem(step) {
  const state = step.passed === true ? "pass" : step.passed === false ? "fail" : "pending";
  const head = el("div", { className: "step-head" }, [
    el("span", { className: `pill verdict ${state}`, text: state }),
    el("span", { className: "muted small", text: ` #${step.index} ${step.action ?? ""} ${who(step)} ` }),
    el("span", { className: "step-desc", text: step.description ?? "" }),
  ]);
  if (typeof step.ms === "number") head.append(el("span", { className: "muted small", text: ` · ${Math.round(step.ms)} ms` }));
  if (step.run_id) {
    head.append(el("a", { className: "small run-link", href: `/ui/runs/${step.run_id}`, text: "inspect run" }));
  }
  const li = el("li", { className: `test-step ${state}`, dataset: { index: String(step.index) } }, [head]);
  if (step.checks && step.checks.length) li.append(checksTable(step.checks));
  return li;
}

function who(step) {
  const parts = [step.user, step.thread].filter(Boolean);
  return parts.length ? `(${parts.join(" / ")})` : "";
}

function checksTable(checks) {
  const rows = checks.map((c) =>
    el("tr", { className: c.passed ? "pass" : "fail" }, [
      el("td", { text: c.passed ? "✓" : "✗" }),
      el("td", { text: c.name }),
      el("td", { className: "small", text: show(c.expected) }),
      el("td", { className: "small", text: show(c.actual) }),
    ]),
  );
  const head = el("tr", {}, ["", "check", "expected", "actual"].map((t) => el("th", { text: t })));
  return el("table", { className: "grid checks" }, [el("thead", {}, [head]), el("tbody", {}, rows)]);
}

function show(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

async function loadHistory() {
  const runs = listOf(await api("/v1/test-runs"), "test_runs", "runs");
  const body = document.querySelector("#test-history tbody");
  body.replaceChildren(...runs.map(historyRow));
  if (!runs.length) body.append(el("tr", {}, [el("td", { colSpan: 4, className: "muted small", text: "No test runs yet." })]));
}

function historyRow(run) {
  const view = el("a", { href: `/ui/tests?run=${encodeURIComponent(run.id)}`, text: "view" });
  view.addEventListener("click", (event) => {
    event.preventDefault();
    history.replaceState(null, "", view.href);
    follow(run.id).catch((e) => showError(String(e.message || e)));
  });
  const started = (run.started_at || "").replace("T", " ").slice(0, 19);
  const result = el("td", { className: "result" }, [
    el("span", { className: `pill tr-${run.status}`, text: run.status }),
    el("span", { className: "muted small", text: ` ${run.passed ?? 0}✓ ${run.failed ?? 0}✗` }),
  ]);
  const cells = [
    el("td", { className: "small", text: started }),
    el("td", { text: `${run.suite} · ${run.mode}` }),
    result,
  ];
  return el("tr", { dataset: { id: run.id } }, [...cells, el("td", {}, [view])]);
}

async function init() {
  await Promise.all([loadSuites(), loadHistory()]);
  const wanted = new URLSearchParams(location.search).get("run");
  if (wanted) await follow(wanted);
}

init().catch((e) => showError(String(e.message || e)));
