// pyblob's web console: sign in with an API token, upload (tus above TUS_ABOVE), list, share and
// delete files, browse S3 buckets read-only. Plain ES module, no build step; it talks only to the
// REST API of the origin it is served from. User content is only ever put in the page as text.

const TUS_ABOVE = 8 * 1024 * 1024; // larger files go through tus, resumable
const TUS_CHUNK = 8 * 1024 * 1024; // bytes per PATCH
const THUMB_MAX = 5 * 1024 * 1024; // images up to this size get a thumbnail
const PAGE = 50;
const TOKEN_KEY = "pyblob.token";
const EXPIRY_CHOICES = [["", "keep"], ["3600", "1 hour"], ["86400", "1 day"], ["604800", "7 days"],
  ["2592000", "30 days"], ["never", "never"]];

const $ = (id) => document.getElementById(id);
let cursor = null;
let files = [];
const thumbs = new Map(); // link id -> object URL

// ---- the API -----------------------------------------------------------------------------------
function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token()}`, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response;
}

async function failure(response) {
  let detail = `${response.status} ${response.statusText}`;
  try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
  const error = new Error(`${detail} (HTTP ${response.status})`);
  error.status = response.status;
  return error;
}

function say(text, bad = false) {
  const message = $("message");
  message.textContent = text;
  message.classList.toggle("error", bad);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null) node.append(child);
  return node;
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = bytes, unit = 0;
  while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit += 1; }
  return unit ? `${n.toFixed(1)} ${units[unit]}` : `${bytes} B`;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    say(`${what} copied.`);
  } catch {
    window.prompt(`Copy the ${what.toLowerCase()}:`, text);
  }
}

// ---- signing in --------------------------------------------------------------------------------
async function signIn(candidate) {
  sessionStorage.setItem(TOKEN_KEY, candidate);
  try {
    const who = await (await api("/auth")).json();
    say(`Signed in as ${who.user}.`);
    $("signin").hidden = true;
    $("nav").hidden = false;
    show("files");
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    say(error.status === 401 ? "That token is not valid." : error.message, true);
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  for (const url of thumbs.values()) URL.revokeObjectURL(url);
  thumbs.clear();
  $("nav").hidden = true;
  $("files").hidden = true;
  $("buckets").hidden = true;
  $("signin").hidden = false;
  $("token").value = "";
  say("Signed out.");
}

async function rotateToken() {
  if (!window.confirm("Replace your token? The current one stops working at once.")) return;
  try {
    const { token: fresh } = await (await api("/user/me/token", { method: "POST" })).json();
    sessionStorage.setItem(TOKEN_KEY, fresh);
    say(`New token (shown this once, copy it now): ${fresh}`);
  } catch (error) { say(error.message, true); }
}

function show(view) {
  for (const name of ["files", "buckets"]) $(name).hidden = name !== view;
  for (const button of document.querySelectorAll("nav [data-view]")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === view));
  }
  if (view === "files") { loadUsage(); loadFiles(true); } else { loadBuckets(); }
}

// ---- usage and the file list -------------------------------------------------------------------
async function loadUsage() {
  try {
    const me = await (await api("/user/me")).json();
    const used = me.total_size || 0;
    const quota = me.quota || 0;
    $("usage-fill").style.width = quota ? `${Math.min(100, (100 * used) / quota)}%` : "0";
    $("usage-text").textContent = quota ? `${size(used)} of ${size(quota)}` : `${size(used)} used, no quota`;
  } catch (error) { say(error.message, true); }
}

async function loadFiles(reset) {
  if (reset) { cursor = null; files = []; }
  try {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) query.set("cursor", cursor);
    const response = await api(`/list?${query}`);
    files = files.concat(await response.json());
    cursor = response.headers.get("X-Next-Cursor");
    $("more").hidden = !cursor;
    renderFiles();
  } catch (error) { say(error.message, true); }
}

function renderFiles() {
  const wanted = $("search").value.trim().toLowerCase();
  const list = $("file-list");
  list.replaceChildren(...files.filter((f) => f.file_name.toLowerCase().includes(wanted)).map(fileItem));
  selectionChanged();
}

function fileItem(file) {
  file.file_type = file.file_type || "application/octet-stream";
  const checkbox = el("input", { type: "checkbox", value: file.file_id, "aria-label": `Select ${file.file_name}`,
    onchange: selectionChanged });
  const thumb = el("div", { class: "thumb", "aria-hidden": "true" }, typeLabel(file.file_type));
  if (file.file_type.startsWith("image/") && file.file_size <= THUMB_MAX) loadThumb(file.file_id, thumb);
  const expires = file.expired ? "expired" : file.expires_at ? `expires ${new Date(file.expires_at).toLocaleString()}` : "never expires";
  const budget = file.max_downloads ? ` of ${file.max_downloads}` : "";
  const settings = settingsRow(file);
  return el("li", { "data-id": file.file_id },
    checkbox, thumb,
    el("div", {}, el("div", { class: "name" }, file.file_name),
      el("div", { class: "meta" }, `${size(file.file_size)} · ${file.download_times}${budget} downloads · ${expires}`)),
    el("div", { class: "actions" },
      el("a", { href: file.file_url, target: "_blank", rel: "noopener" }, "Open"),
      el("button", { type: "button", onclick: () => copy(file.file_url, "Link") }, "Copy link"),
      embedMenu(file),
      el("button", { type: "button", "aria-expanded": "false", class: "toggle-settings",
        onclick: (event) => toggle(event.currentTarget, settings) }, "Settings"),
      el("button", { type: "button", class: "delete", onclick: () => deleteFiles([file.file_id]) }, "Delete")),
    settings);
}

function typeLabel(type) {
  const [major, minor = ""] = type.split("/");
  if (["image", "video", "audio", "text"].includes(major)) return major;
  const short = minor.replace(/^(x-|vnd\.)/, "").split(/[.+;-]/)[0];
  return short && short !== "octet" && short.length <= 6 ? short : "file";
}

async function loadThumb(id, box) {
  try {
    let url = thumbs.get(id);
    if (!url) {
      const blob = await (await api(`/api/links/${encodeURIComponent(id)}/content`)).blob();
      url = URL.createObjectURL(blob);
      thumbs.set(id, url);
    }
    box.replaceChildren(el("img", { src: url, alt: "" }));
  } catch { /* the type label stays */ }
}

function embedMenu(file) {
  const snippets = {
    html: file.file_type.startsWith("video/")
      ? `<video src="${file.file_url}" controls></video>` : `<img src="${file.file_url}" alt="">`,
    markdown: file.file_type.startsWith("image/") ? `![](${file.file_url})` : `[${file.file_name}](${file.file_url})`,
  };
  const select = el("select", { "aria-label": `Embed snippet for ${file.file_name}`,
    onchange: () => { if (select.value) copy(snippets[select.value], "Snippet"); select.value = ""; } },
  el("option", { value: "" }, "Embed…"),
  el("option", { value: "html" }, file.file_type.startsWith("video/") ? "<video>" : "<img>"),
  el("option", { value: "markdown" }, "Markdown"));
  return select;
}

function toggle(button, panel) {
  panel.hidden = !panel.hidden;
  button.setAttribute("aria-expanded", String(!panel.hidden));
}

function settingsRow(file) {
  const expiry = el("select", { class: "expiry", "aria-label": "Expires in" },
    ...EXPIRY_CHOICES.map(([value, label]) => el("option", { value }, label)));
  const budget = el("input", { class: "budget", type: "number", min: "1", placeholder: "no limit",
    value: file.max_downloads ?? "", "aria-label": "Maximum downloads" });
  const save = async () => {
    const body = {};
    if (expiry.value === "never") body.expires_in = null;
    else if (expiry.value) body.expires_in = Number(expiry.value);
    body.max_downloads = budget.value ? Number(budget.value) : null;
    try {
      await api(`/api/links/${encodeURIComponent(file.file_id)}`, { method: "PATCH", body });
      say(`Saved the settings of ${file.file_name}.`);
      loadFiles(true);
    } catch (error) { say(error.message, true); }
  };
  const revoke = async () => {
    if (!window.confirm(`Revoke the link of ${file.file_name}? It stops working for good.`)) return;
    try {
      await api(`/api/links/${encodeURIComponent(file.file_id)}`, { method: "DELETE" });
      say(`Revoked ${file.file_name}.`);
      loadFiles(true);
    } catch (error) { say(error.message, true); }
  };
  return el("div", { class: "settings", hidden: true },
    el("label", {}, "Expires ", expiry), el("label", {}, "Max downloads ", budget),
    el("button", { type: "button", class: "save", onclick: save }, "Save"),
    el("button", { type: "button", onclick: revoke }, "Revoke link"));
}

function selectionChanged() {
  $("delete-selected").disabled = !document.querySelector("#file-list input[type=checkbox]:checked");
}

async function deleteFiles(ids) {
  if (!window.confirm(ids.length === 1 ? "Delete this file?" : `Delete ${ids.length} files?`)) return;
  let failed = 0;
  for (const id of ids) {
    try { await api(`/delete/${encodeURIComponent(id)}`, { method: "DELETE" }); } catch { failed += 1; }
  }
  say(failed ? `${failed} of ${ids.length} could not be deleted.` : `Deleted ${ids.length}.`, failed > 0);
  loadUsage();
  loadFiles(true);
}

// ---- uploads -----------------------------------------------------------------------------------
function uploadAll(list) {
  for (const file of list) upload(file);
}

async function upload(file) {
  const bar = el("progress", { max: file.size || 1, value: 0, "aria-label": `Uploading ${file.name}` });
  const status = el("span", {}, file.size > TUS_ABOVE ? "resumable" : "");
  const row = el("li", { class: "upload" }, el("span", { class: "name" }, file.name), bar, status);
  $("uploads").prepend(row);
  const progress = (sent) => { bar.value = sent; };
  try {
    const url = file.size > TUS_ABOVE ? await tusUpload(file, progress) : await formUpload(file, progress);
    bar.value = bar.max;
    status.replaceChildren("done ", el("a", { href: url, target: "_blank", rel: "noopener" }, "link"));
    row.classList.add("done");
    loadUsage();
    loadFiles(true);
  } catch (error) {
    status.textContent = error.message;
    status.classList.add("error");
    row.classList.add("failed");
  }
}

function xhr(method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => onProgress(event.loaded);
    request.onload = () => resolve(request);
    request.onerror = () => reject(new Error("the connection failed"));
    request.send(body);
  });
}

function xhrFailure(request) {
  let detail = `HTTP ${request.status}`;
  try { detail = `${JSON.parse(request.responseText).detail} (HTTP ${request.status})`; } catch { /* not JSON */ }
  return new Error(detail);
}

async function formUpload(file, onProgress) {
  const form = new FormData();
  form.append("file", file, file.name);
  const request = await xhr("POST", "/upload", { Authorization: `Bearer ${token()}` }, form, onProgress);
  if (request.status !== 200 && request.status !== 201) throw xhrFailure(request);
  return JSON.parse(request.responseText).file_url;
}

function b64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

async function tusUpload(file, onProgress) {
  const tus = { Authorization: `Bearer ${token()}`, "Tus-Resumable": "1.0.0" };
  const created = await fetch("/upload_tus", { method: "POST", headers: { ...tus,
    "Upload-Length": String(file.size),
    "Upload-Metadata": `filename ${b64(file.name)},filetype ${b64(file.type || "application/octet-stream")}` } });
  if (created.status !== 201) throw await failure(created);
  const location = created.headers.get("Location");
  let offset = 0;
  let failures = 0;
  let link = null;
  while (offset < file.size) {
    const piece = file.slice(offset, offset + TUS_CHUNK);
    let request = null;
    try {
      request = await xhr("PATCH", location,
        { ...tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(offset) },
        piece, (sent) => onProgress(offset + sent));
    } catch { request = null; }
    if (request && request.status === 204) {
      offset = Number(request.getResponseHeader("Upload-Offset"));
      link = request.getResponseHeader("Upload-Link") || link;
      failures = 0;
      continue;
    }
    if (request && request.status !== 409 && request.status < 500) throw xhrFailure(request);
    if (++failures > 3) throw request ? xhrFailure(request) : new Error("the connection failed");
    const probe = await fetch(location, { method: "HEAD", headers: tus }); // where to resume
    if (!probe.ok) throw await failure(probe);
    offset = Number(probe.headers.get("Upload-Offset"));
  }
  return link;
}

// ---- buckets (read-only) -----------------------------------------------------------------------
async function loadBuckets() {
  $("where").textContent = "Your S3 buckets";
  try {
    const { buckets } = await (await api("/api/buckets")).json();
    $("bucket-list").replaceChildren(...buckets.map((b) => el("li", {}, el("span", { class: "thumb" }, "bucket"),
      el("button", { type: "button", class: "open-bucket", onclick: () => loadObjects(b.name, "") }, b.name))));
    if (!buckets.length) $("bucket-list").replaceChildren(el("li", {}, "No buckets yet."));
  } catch (error) { say(error.message, true); }
}

async function loadObjects(bucket, prefix, after = "", append = false) {
  $("where").replaceChildren(el("button", { type: "button", onclick: loadBuckets }, "All buckets"), ` ${bucket}/${prefix}`);
  try {
    const query = new URLSearchParams({ prefix, limit: String(PAGE) });
    if (after) query.set("after", after);
    const page = await (await api(`/api/buckets/${encodeURIComponent(bucket)}/objects?${query}`)).json();
    const items = [
      ...page.folders.map((folder) => el("li", {}, el("span", { class: "thumb" }, "folder"),
        el("button", { type: "button", onclick: () => loadObjects(bucket, folder) }, folder.slice(prefix.length)))),
      ...page.objects.map((object) => objectItem(bucket, prefix, object)),
    ];
    if (page.next_after) {
      items.push(el("li", {}, el("button", { type: "button",
        onclick: (event) => { event.currentTarget.parentElement.remove(); loadObjects(bucket, prefix, page.next_after, true); } },
      "Load more")));
    }
    if (append) $("bucket-list").append(...items); else $("bucket-list").replaceChildren(...items);
  } catch (error) { say(error.message, true); }
}

function objectItem(bucket, prefix, object) {
  const result = el("span", { class: "meta" });
  const share = async () => {
    try {
      const link = await (await api("/api/links", { method: "POST", body: { bucket, key: object.key } })).json();
      result.replaceChildren(el("a", { href: link.url, target: "_blank", rel: "noopener" }, link.url));
      copy(link.url, "Link");
    } catch (error) { say(error.message, true); }
  };
  return el("li", {}, el("span", { class: "thumb" }, typeLabel(object.content_type)),
    el("div", {}, el("div", { class: "name" }, object.key.slice(prefix.length)),
      el("div", { class: "meta" }, size(object.size))),
    el("div", { class: "actions" }, el("button", { type: "button", class: "share", onclick: share }, "Make a short link"), result));
}

// ---- wiring ------------------------------------------------------------------------------------
function wire() {
  $("signin-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", signOut);
  $("rotate").addEventListener("click", rotateToken);
  for (const button of document.querySelectorAll("nav [data-view]")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  const drop = $("drop");
  const picker = $("picker");
  drop.addEventListener("click", () => picker.click());
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); picker.click(); } });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); uploadAll(event.dataTransfer.files); });
  picker.addEventListener("change", () => { uploadAll(picker.files); picker.value = ""; });
  $("search").addEventListener("input", renderFiles);
  $("more").addEventListener("click", () => loadFiles(false));
  $("delete-selected").addEventListener("click", () => deleteFiles(
    [...document.querySelectorAll("#file-list input[type=checkbox]:checked")].map((box) => box.value)));
  if (token()) signIn(token());
}

wire();
