// The operator page: talks to the same server's JSON API with the token typed above.
"use strict";

const pageSize = 20;
let offset = 0;
let modelId = null;

const $ = (id) => document.getElementById(id);

function headers() {
  const token = $("token").value.trim();
  const result = { "Content-Type": "application/json" };
  if (token) result.Authorization = "Bearer " + token;
  return result;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data.error && data.error.message) || response.status + " " + response.statusText);
  return data;
}

function say(message, isError) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : text;
  return td;
}

async function loadEdits() {
  const query = new URLSearchParams({ offset: String(offset), limit: String(pageSize), search: $("search").value });
  const page = await call("GET", "/v1/edits?" + query);
  const rows = $("edits");
  rows.replaceChildren();
  for (const edit of page.data) {
    const row = document.createElement("tr");
    row.dataset.editId = edit.id;
    row.append(cell(edit.id), cell(edit.prompt), cell(edit.target), cell(edit.subject));
    const remove = document.createElement("button");
    remove.textContent = "Remove";
    remove.className = "remove";
    remove.addEventListener("click", () => removeEdit(edit.id));
    const actions = document.createElement("td");
    actions.append(remove);
    row.append(actions);
    rows.append(row);
  }
  $("total").textContent = "(" + page.total + ")";
  $("page").textContent = page.total ? (offset + 1) + "–" + (offset + page.data.length) + " of " + page.total : "none";
  $("previous").disabled = offset === 0;
  $("next").disabled = !page.has_more;
}

async function refresh() {
  try { await loadEdits(); } catch (error) { say(error.message, true); }
}

async function removeEdit(id) {
  try {
    await call("DELETE", "/v1/edits/" + encodeURIComponent(id));
    say("Removed edit " + id + ".");
    await loadEdits();
  } catch (error) { say(error.message, true); }
}

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const edit = { prompt: $("prompt").value, target: $("target").value };
  if ($("subject").value.trim()) edit.subject = $("subject").value;
  try {
    const added = await call("POST", "/v1/edits", edit);
    say("Added edit " + added.data[0].id + ".");
    $("prompt").value = $("target").value = $("subject").value = "";
    await loadEdits();
  } catch (error) { say(error.message, true); }
});

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const reply = await call("POST", "/v1/chat/completions", { model: modelId, messages: [{ role: "user", content: $("question").value }] });
    const choice = reply.choices[0];
    const by = choice.serac.routed ? "answered by edit " + choice.serac.edit_id : "answered by the " + (choice.serac.answered_by === "upstream" ? "upstream" : "base") + " model";
    $("answer").textContent = choice.message.content + " — " + by;
    $("answer").className = choice.serac.routed ? "routed" : "base";
    $("answer").dataset.editId = choice.serac.edit_id || "";
  } catch (error) { say(error.message, true); }
});

$("search-form").addEventListener("submit", (event) => { event.preventDefault(); offset = 0; refresh(); });
$("previous").addEventListener("click", () => { offset = Math.max(0, offset - pageSize); refresh(); });
$("next").addEventListener("click", () => { offset += pageSize; refresh(); });
$("token").addEventListener("change", () => { sessionStorage.setItem("serac-token", $("token").value); refresh(); });

(async () => {
  $("token").value = sessionStorage.getItem("serac-token") || "";
  const health = await fetch("/health").then((response) => response.json());
  modelId = health.model;
  $("model").textContent = health.model + " (" + health.editor + ")";
  await refresh();
})();
