// Self-learning dashboard: every action goes through the admin JSON API (/v1/selflearn/...) with
// the session cookie; running cycles are polled for live progress and the page reloads when one
// ends. Text only ever goes into the page as textContent (common.js el()).
import { api, el } from "./common.js";

const BASE = "/v1/selflearn";
const POLL_MS = 500;
const errorBox = document.getElementById("dash-error");

function showError(error) {
  errorBox.textContent = error ? String(error.message || error) : "";
  errorBox.hidden = !error;
}

function guarded(action) {
  return (event) => {
    event.preventDefault();
    showError("");
    action(event).catch(showError);
  };
}

function on(selector, action) {
  for (const node of document.querySelectorAll(selector)) node.addEventListener("click", guarded(action));
}

async function startCycle(event) {
  const { kind, goal } = event.currentTarget.dataset;
  const cycle = await api(`${BASE}/cycles`, { method: "POST", body: { kind, goal_id: Number(goal), who: "dashboard" } });
  location.assign(`/ui/dashboard/cycles/${encodeURIComponent(cycle.id)}`);
}

async function stopCycle(event) {
  event.currentTarget.disabled = true;
  await api(`${BASE}/cycles/${encodeURIComponent(event.currentTarget.dataset.id)}/stop`, { method: "POST" });
}

async function decide(event, verdict) {
  const id = event.currentTarget.dataset.id;
  await api(`${BASE}/proposals/${encodeURIComponent(id)}/${verdict}`, { method: "POST", body: { who: "dashboard" } });
  location.reload();
}

function goalBody(form) {
  const data = new FormData(form);
  const body = { name: data.get("name"), metric: data.get("metric"), target: Number(data.get("target")) };
  if (data.get("c_metric") && data.get("c_value") !== "") {
    body.constraints = [{ metric: data.get("c_metric"), op: data.get("c_op"), value: Number(data.get("c_value")) }];
  }
  if (data.get("s_param") && data.get("s_low") !== "" && data.get("s_high") !== "") {
    body.search_space = { [data.get("s_param")]: [Number(data.get("s_low")), Number(data.get("s_high"))] };
  }
  return body;
}

// A refused goal's error goes next to the field it is about.
const FIELD_ERRORS = [
  ["goal-space-error", (m) => /search_space|low end|guard range|not a numeric parameter/.test(m)],
  ["goal-name-error", (m) => /goal named|name/.test(m)],
];

function fieldError(message) {
  for (const [id] of FIELD_ERRORS) document.getElementById(id).hidden = true;
  const found = FIELD_ERRORS.find(([, about]) => about(message));
  if (!found) return false;
  const box = document.getElementById(found[0]);
  box.textContent = message;
  box.hidden = false;
  return true;
}

async function createGoal(event) {
  const body = goalBody(event.currentTarget);
  const space = Object.values(body.search_space || {})[0];
  if (space && !(space[0] < space[1])) {
    fieldError(`search_space: the low end ${space[0]} must be below the high end ${space[1]}`);
    return;
  }
  try {
    await api(`${BASE}/goals`, { method: "POST", body });
  } catch (error) {
    if (fieldError(String(error.message || error))) return;
    throw error;
  }
  location.reload();
}

async function setGoalStatus(event) {
  const { goal, status } = event.currentTarget.dataset;
  await api(`${BASE}/goals/${encodeURIComponent(goal)}`, { method: "PATCH", body: { status } });
  location.reload();
}

async function rollback(event) {
  const reason = new FormData(event.currentTarget).get("reason");
  await api(`${BASE}/parameters/rollback`, { method: "POST", body: { reason, who: "dashboard" } });
  location.reload();
}

function showProgress(item, cycle) {
  item.dataset.status = cycle.status;
  item.querySelector(".cycle-progress").value = cycle.progress;
  item.querySelector(".cycle-pct").textContent = `${Math.round(cycle.progress * 100)}%`;
  item.querySelector(".cycle-phase").textContent = cycle.phase;
}

function experimentRow(x) {
  const verdict = x.verdict ? el("span", { className: `pill verdict-${x.verdict}`, text: x.verdict }) : "—";
  const cells = [x.role, x.trial === null || x.trial === undefined ? "—" : String(x.trial + 1), x.name, x.status];
  return el("tr", { dataset: { experiment: x.experiment_id } }, [
    ...cells.map((text) => el("td", { text })),
    el("td", {}, [verdict]),
  ]);
}

// A cycle's page lists its experiments as they start and end (a deep cycle's trials, live).
function showExperiments(cycle) {
  const body = document.querySelector("#cycle-experiments[data-live] tbody");
  if (body && Array.isArray(cycle.experiments)) body.replaceChildren(...cycle.experiments.map(experimentRow));
}

async function follow(item) {
  for (;;) {
    const cycle = await api(`${BASE}/cycles/${encodeURIComponent(item.dataset.id)}`);
    showProgress(item, cycle);
    showExperiments(cycle);
    if (cycle.status !== "running") return location.reload();
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function init() {
  on(".start-cycle", startCycle);
  on(".stop-cycle", stopCycle);
  on(".goal-status", setGoalStatus);
  on(".approve", (e) => decide(e, "approve"));
  on(".reject", (e) => decide(e, "reject"));
  document.getElementById("goal-form")?.addEventListener("submit", guarded(createGoal));
  document.getElementById("rollback-form")?.addEventListener("submit", guarded(rollback));
  for (const item of document.querySelectorAll("#running .cycle[data-status=running]")) follow(item).catch(showError);
}

init();
