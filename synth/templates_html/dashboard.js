// synth dashboard: polls /v1/jobs and draws the table. Every value from the API is put
// into the page with textContent (never innerHTML): recipe names and errors are user input.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function pillClass(status) {
  if (status === "succeeded") return "pill ok";
  if (status === "running" || status === "queued") return "pill warn";
  return "pill fail";
}

function row(job) {
  const p = job.progress || {};
  const frac = Math.max(0, Math.min(1, p.fraction || 0));
  const bar = el("span", { class: "bar" + (job.status === "succeeded" ? " done" : job.status === "failed" ? " bad" : "") },
    el("span", { style: `width:${(frac * 100).toFixed(1)}%` }));
  const links = el("td", { class: "small" });
  if (p.kept > 0 || job.status === "succeeded") {
    links.append(el("a", { href: job.links.report, target: "_blank", rel: "noopener" }, "report"), " · ",
      el("a", { href: job.links.records + "?limit=100", target: "_blank", rel: "noopener" }, "records"));
  }
  if (job.status === "running" || job.status === "queued") {
    const b = el("button", { class: "secondary small", type: "button" }, "cancel");
    b.addEventListener("click", () => cancel(job.id));
    links.append(" ", b);
  }
  const status = el("td", {}, el("span", { class: pillClass(job.status) }, job.status));
  if (job.error) status.append(el("div", { class: "err" }, job.error.split("\n")[0]));
  return el("tr", { "data-job": job.id },
    el("td", {}, el("code", {}, job.id)),
    el("td", {}, job.recipe || "", job.label ? el("div", { class: "muted small" }, job.label) : ""),
    status,
    el("td", {}, bar, ` ${p.kept || 0} / ${job.n}`),
    el("td", { class: "n" }, String(p.rejected || 0)),
    el("td", { class: "n" }, "$" + Number((job.cost || {}).usd || 0).toFixed(4)),
    el("td", { class: "small muted" }, (job.created_at || "").replace("T", " ").replace("Z", " UTC")),
    links);
}

async function api(path, options) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (resp.status === 401) {
    $("login").hidden = false;
    $("new-job").hidden = true;
    throw new Error("unauthorized");
  }
  return resp;
}

async function refresh() {
  try {
    const resp = await api("/v1/jobs?limit=200");
    const body = await resp.json();
    const tbody = $("jobs").querySelector("tbody");
    tbody.replaceChildren(...body.jobs.map(row));
    $("empty").hidden = body.jobs.length > 0;
    const active = body.jobs.filter((j) => j.status === "running" || j.status === "queued").length;
    $("summary").textContent = `${body.total} total, ${active} active`;
    $("login").hidden = true;
    $("new-job").hidden = false;
  } catch (e) { /* shown by the login box, or retried next tick */ }
}

async function loadRecipes() {
  try {
    const resp = await api("/v1/recipes");
    const body = await resp.json();
    $("recipe").replaceChildren(...body.recipes.map((r) => el("option", { value: r.name, title: r.description }, r.name)));
  } catch (e) { /* not signed in yet */ }
}

async function cancel(id) {
  // JSON, like every state change: the service refuses form posts (CSRF).
  await api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
  });
  refresh();
}

function say(text, isError) {
  $("message").textContent = text;
  $("message").className = "small" + (isError ? " error" : "");
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const resp = await fetch("/v1/session", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: $("token").value }), credentials: "same-origin",
    });
    $("token").value = "";
    if (resp.ok) { loadRecipes(); refresh(); }
  });
  $("job-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { recipe: $("recipe").value, n: Number($("n").value) };
    if ($("seed").value !== "") body.seed = Number($("seed").value);
    if ($("model").value.trim()) body.model = $("model").value.trim();
    const resp = await api("/v1/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const out = await resp.json();
    if (resp.ok) say(`Submitted job ${out.id}.`, false);
    else say(`${out.error}: ${(out.details || []).join("; ")}`, true);
    refresh();
  });
  loadRecipes();
  refresh();
  setInterval(refresh, 1000);
});
