// optiqa judge: two-alternative forced choice between two restored crops.
// Votes go into an outbox kept in localStorage and are sent in order; the server ignores a vote
// it has already stored (the trial id is the vote id), so resending after a failure or a reload
// is safe. The next pair is preloaded, so the page moves on as soon as a choice is made.
"use strict";
(() => {
  const RATER_KEY = "optiqa-judge-rater";
  const OUTBOX_KEY = "optiqa-judge-outbox";
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  let rater = null;
  let current = null;        // the trial on screen
  let upcoming = [];         // issued trials still to show
  let ready = false;         // both images of `current` are on screen
  let shownAt = 0;
  let showingReference = false;
  let progress = { votes: 0, target: 0 };
  let sending = false;
  let outbox = loadOutbox();
  const answered = new Set(outbox.map((v) => v.trial_id));
  const images = new Map();  // url -> Promise of a decoded Image (preload cache)

  function loadOutbox() {
    try { return JSON.parse(localStorage.getItem(OUTBOX_KEY)) || []; } catch (e) { return []; }
  }
  function saveOutbox() { localStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox)); }
  function status(message) { $("status").textContent = message || ""; }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin",
                                                       cache: "no-store" }, options));
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    return { status: response.status, body, headers: response.headers };
  }

  function preload(url) {
    if (!url) return Promise.resolve(null);
    if (!images.has(url)) {
      const img = new Image();
      img.src = url;
      images.set(url, img.decode().then(() => img));
    }
    return images.get(url);
  }
  function preloadTrial(t) {
    if (!t) return;
    [t.left, t.right, t.reference].forEach((u) => preload(u).catch(() => images.delete(u)));
  }
  function forget(t) { [t.left, t.right, t.reference].forEach((u) => images.delete(u)); }

  function zoomFor(w, h) {
    const availableWidth = (window.innerWidth - 96) / 2;
    const availableHeight = window.innerHeight - 190;
    return Math.max(1, Math.min(8, Math.floor(Math.min(availableWidth / w, availableHeight / h))));
  }

  function layout() {
    if (!current) return;
    const zoom = zoomFor(current.width, current.height);
    for (const side of ["left", "right"]) {
      const img = $(side).querySelector("img");
      img.width = current.width * zoom;   // integer factor + pixelated: nearest neighbour
      img.height = current.height * zoom;
    }
  }

  async function show(trial) {
    current = trial;
    ready = false;
    setReference(false);
    const pair = $("pair");
    pair.dataset.trial = trial.trial_id;
    pair.classList.add("loading");
    try {
      await Promise.all([preload(trial.left), preload(trial.right)]);
    } catch (e) {
      forget(trial);
      status("an image failed to load; retrying");
      await sleep(1000);
      if (current === trial) show(trial);
      return;
    }
    if (current !== trial) return;
    for (const side of ["left", "right"]) $(side).querySelector("img").src = trial[side];
    layout();
    await Promise.all(["left", "right"].map((s) => $(s).querySelector("img").decode()
                                                    .catch(() => null)));
    if (current !== trial) return;
    pair.classList.remove("loading");
    pair.dataset.ready = trial.trial_id;
    status("");
    ready = true;
    shownAt = performance.now();
    preload(trial.reference).catch(() => null);
    preloadTrial(upcoming[0]);
  }

  function next() {
    const trial = upcoming.shift();
    if (trial) {
      show(trial);
    } else {
      current = null;
      $("pair").classList.add("loading");
      status("loading the next pair...");
    }
  }

  function renderProgress() {
    const { votes, target } = progress;
    $("count").textContent = `${votes} / ${target}`;
    $("bar-fill").style.width = `${Math.min(100, (100 * votes) / Math.max(1, target))}%`;
    $("done").hidden = votes < target;
  }

  function accept(body) {
    progress = body.progress;
    renderProgress();
    upcoming = body.trials.filter((t) => !answered.has(t.trial_id)
                                         && !(current && t.trial_id === current.trial_id));
    if (!current) next(); else preloadTrial(upcoming[0]);
  }

  function vote(choice) {
    if (!ready || !current) return;
    setReference(false);
    ready = false;
    const trial = current;
    answered.add(trial.trial_id);
    outbox.push({ trial_id: trial.trial_id, rater, image: trial.image, crop: trial.crop, choice,
                  response_ms: Math.max(1, Math.round(performance.now() - shownAt)) });
    saveOutbox();
    progress.votes += 1;
    renderProgress();
    forget(trial);
    next();
    flush();
  }

  async function flush() {
    if (sending) return;
    sending = true;
    try {
      while (outbox.length) {
        let r;
        try {
          r = await api("/api/vote", { method: "POST", body: JSON.stringify(outbox[0]),
                                       headers: { "Content-Type": "application/json" } });
        } catch (e) {
          status("server unreachable: your votes are kept and sent when it is back");
          await sleep(2000);
          continue;
        }
        if (r.status === 429 || r.status >= 500) {
          await sleep(1000 * (Number(r.headers.get("Retry-After")) || 2));
          continue;
        }
        outbox.shift();
        saveOutbox();
        if (r.status === 200) {
          if (!outbox.length) accept(r.body);
        } else {
          status(`vote refused: ${(r.body && r.body.error) || r.status}`);
        }
      }
    } finally {
      sending = false;
    }
  }

  function setReference(on) {
    if (on && (!current || !current.reference || !ready)) return;
    if (on === showingReference) return;
    showingReference = on;
    for (const side of ["left", "right"]) {
      $(side).querySelector("img").src = on ? current.reference : current[side];
    }
    $("pair").classList.toggle("reference", on);
  }

  async function start(name) {
    const r = await api(`/api/trials?rater=${encodeURIComponent(name)}`);
    if (r.status !== 200) {
      status((r.body && r.body.error) || `the server answered ${r.status}`);
      return;
    }
    rater = r.body.rater;
    localStorage.setItem(RATER_KEY, rater);
    $("login").hidden = true;
    $("judge").hidden = false;
    $("who").hidden = false;
    $("progress").hidden = false;
    $("rater-name").textContent = rater;
    progress = r.body.progress;
    progress.votes += outbox.filter((v) => v.rater === rater).length;  // not yet sent
    renderProgress();
    upcoming = r.body.trials.filter((t) => !answered.has(t.trial_id));
    next();
    flush();
  }

  function showLogin() {
    rater = null;
    current = null;
    upcoming = [];
    localStorage.removeItem(RATER_KEY);
    $("judge").hidden = true;
    $("who").hidden = true;
    $("progress").hidden = true;
    $("login").hidden = false;
    $("rater-input").focus();
  }

  document.addEventListener("keydown", (e) => {
    if (!rater || e.target.tagName === "INPUT" || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "ArrowLeft") { e.preventDefault(); vote("left"); }
    else if (e.key === "ArrowRight") { e.preventDefault(); vote("right"); }
    else if ((e.key === "r" || e.key === "R") && !e.repeat) setReference(true);
  });
  document.addEventListener("keyup", (e) => {
    if (e.key === "r" || e.key === "R") setReference(false);
  });
  window.addEventListener("blur", () => setReference(false));
  window.addEventListener("resize", layout);
  $("left").addEventListener("click", () => vote("left"));
  $("right").addEventListener("click", () => vote("right"));
  const button = $("reference-button");
  button.addEventListener("pointerdown", () => setReference(true));
  ["pointerup", "pointerleave", "pointercancel"].forEach(
    (type) => button.addEventListener(type, () => setReference(false)));
  $("change-rater").addEventListener("click", showLogin);
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("rater-input").value.trim();
    if (name) start(name);
  });

  api("/api/config").then((r) => {
    if (r.status !== 200) return;
    $("question").textContent = r.body.question;
    document.title = `${r.body.study}: optiqa judge`;
  });
  const remembered = localStorage.getItem(RATER_KEY);
  if (remembered) start(remembered); else $("rater-input").focus();
})();
