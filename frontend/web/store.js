// The storefront's script: lists the toys (GET /products, again every second so that purchases
// made elsewhere show), buys (POST /orders with an Idempotency-Key), looks orders up
// (GET /orders/{n}). Every failure is explained by the error envelope's `reason`.
"use strict";

const POLL_MS = 1000;
// A purchase whose answer was lost is sent again, with the same key, this many times.
const RETRIES = 3;
const RETRY_MS = 500;

const rows = new Map(); // toy name -> { row, stock, qty, button, pending }

// One key per purchase. crypto.randomUUID exists only in secure contexts (https, localhost);
// getRandomValues everywhere.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Calls the API. Resolves to {ok, data} or {ok: false, error: {code, reason, message}}; a
// request that got no answer (or not the envelope) is `unavailable`, like a 503.
async function call(method, path, body, headers) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const answer = await fetch(path, init);
    const json = await answer.json();
    if (answer.ok && "data" in json) return { ok: true, data: json.data };
    if (json.error) return { ok: false, error: json.error };
  } catch (_) {
    // No answer, or not JSON: treated as the store being unavailable.
  }
  return { ok: false, error: { code: 503, reason: "unavailable", message: "no answer" } };
}

function say(element, text, kind) {
  element.textContent = text;
  element.className = "message " + kind;
}

const UNAVAILABLE = "The store is unavailable, try again.";

// The sentence for a failed purchase of `qty` × `name`, chosen by the envelope's reason.
async function purchaseError(error, name, qty) {
  switch (error.reason) {
    case "out_of_stock": {
      // The message says how many are left; if it ever stops saying, ask.
      const said = /available: (\d+)/.exec(error.message);
      let left = said ? said[1] : null;
      if (left === null) {
        const fresh = await call("GET", "/products/" + encodeURIComponent(name));
        left = fresh.ok ? String(fresh.data.quantity) : "too few";
      }
      return `Sorry, not enough ${name} in stock for ${qty}: only ${left} left.`;
    }
    case "unknown_toy":
      return `The store has no toy named ${name} (any more).`;
    case "bad_request":
      return `That order is not valid: ${error.message}`;
    case "request_id_reused":
    case "request_id_expired":
      return "This purchase cannot be repeated as it was; please buy again.";
    case "unavailable":
      return UNAVAILABLE;
    default:
      return error.code >= 500 ? UNAVAILABLE : `The order failed: ${error.message}`;
  }
}

// Buys `qty` of `name`. The key is kept until the store gives a definite answer, so a second
// click after "unavailable" retries the same purchase instead of buying twice.
async function buy(name) {
  const entry = rows.get(name);
  if (!entry || entry.busy) return; // a double click buys once
  const message = document.getElementById("message");
  const qty = Number(entry.qty.value);
  if (!entry.pending || entry.pending.qty !== qty) entry.pending = { key: newKey(), qty };
  const key = entry.pending.key;
  entry.busy = true;
  entry.button.disabled = true;
  say(message, `Buying ${qty} × ${name} …`, "busy");
  try {
    let answer;
    for (let attempt = 0; ; attempt++) {
      answer = await call("POST", "/orders", { name, quantity: qty }, { "Idempotency-Key": key });
      const retryable = !answer.ok && answer.error.reason === "unavailable";
      if (!retryable || attempt >= RETRIES) break;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
    if (answer.ok) {
      entry.pending = null;
      const number = answer.data.order_number;
      say(message, `Order #${number} placed: ${qty} × ${name}.`, "ok");
      message.dataset.order = String(number);
      delete message.dataset.reason;
    } else {
      if (answer.error.reason !== "unavailable") entry.pending = null;
      say(message, await purchaseError(answer.error, name, qty), "error");
      message.dataset.reason = answer.error.reason;
      delete message.dataset.order;
    }
  } finally {
    entry.busy = false;
    entry.button.disabled = false;
    refresh();
  }
}

// Adds a row for a toy the table does not show yet.
function addRow(body, toy) {
  const row = body.insertRow();
  row.dataset.toy = toy.name;
  row.insertCell().textContent = toy.name;
  const price = row.insertCell();
  price.className = "num";
  const stock = row.insertCell();
  stock.className = "num stock";
  const qty = document.createElement("input");
  Object.assign(qty, { type: "number", min: 1, step: 1, value: 1, className: "qty" });
  qty.setAttribute("aria-label", `Quantity of ${toy.name}`);
  const button = document.createElement("button");
  button.textContent = "Buy";
  button.className = "buy";
  button.addEventListener("click", () => buy(toy.name));
  const cell = row.insertCell();
  cell.append(qty, " ", button);
  const entry = { row, price, stock, qty, button, pending: null, busy: false };
  rows.set(toy.name, entry);
  return entry;
}

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  const updated = document.getElementById("updated");
  try {
    const answer = await call("GET", "/products");
    if (!answer.ok) {
      updated.textContent = "The store is unavailable; showing the last stock seen.";
      return;
    }
    const body = document.querySelector("#toys tbody");
    for (const toy of answer.data) {
      const entry = rows.get(toy.name) || addRow(body, toy);
      entry.price.textContent = toy.price.toFixed(2);
      entry.stock.textContent = String(toy.quantity);
      entry.row.classList.toggle("sold-out", toy.quantity === 0);
    }
    updated.textContent = "Stock as of " + new Date().toLocaleTimeString() + ".";
  } finally {
    refreshing = false;
  }
}

async function lookUp(event) {
  event.preventDefault();
  const result = document.getElementById("lookup-result");
  const number = document.getElementById("order-number").value.trim();
  const answer = await call("GET", "/orders/" + encodeURIComponent(number));
  if (answer.ok) {
    const order = answer.data;
    say(result, `Order #${order.number}: ${order.quantity} × ${order.name}.`, "ok");
    return;
  }
  const error = answer.error;
  const text = {
    no_such_order: `There is no order number ${number}.`,
    bad_request: "Order numbers are whole numbers: 0, 1, 2, …",
    unavailable: UNAVAILABLE,
  }[error.reason] || (error.code >= 500 ? UNAVAILABLE : error.message);
  say(result, text, "error");
}

document.getElementById("lookup").addEventListener("submit", lookUp);
refresh();
setInterval(refresh, POLL_MS);
