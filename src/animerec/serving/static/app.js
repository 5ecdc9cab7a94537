// animerec web page: search, a list of liked anime, recommendations with filters.
// Plain browser JavaScript, no build step. State lives in localStorage.
"use strict";

const STORAGE_KEY = "animerec.page.v1";
const LIST_LENGTH = 24;
const STARTER_TITLES = ["Cowboy Bebop", "Steins;Gate", "Fullmetal Alchemist: Brotherhood", "Toradora!", "Mushishi"];

const state = loadState();
let filterLabels = { genres: [], types: [] };
let recommendRequest = 0;

const $ = (id) => document.getElementById(id);

// --- small helpers -------------------------------------------------------------------

function loadState() {
  const empty = { liked: [], hidden: [], genres: [], types: [], adult: false };
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    return saved && Array.isArray(saved.liked) ? { ...empty, ...saved } : empty;
  } catch (err) {
    return empty;
  }
}

function saveState() {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(state));
  } catch (err) {
    // Private browsing can refuse storage; the page still works for this visit.
  }
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of [].concat(children)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Gradient pairs for card art; each anime keeps the same one across lists.
const PALETTES = [
  ["#ff6fa5", "#7b5cff"], ["#ff9a62", "#e8457c"], ["#4fd8f0", "#6a5cff"], ["#a66bff", "#ff6fd8"],
  ["#ffc857", "#ff6f61"], ["#5ee7b7", "#3a7bd5"], ["#f857a6", "#ff5858"], ["#7f7fd5", "#86a8e7"],
  ["#fc5c7d", "#6a82fb"], ["#43cea2", "#185a9d"], ["#ee9ca7", "#8e6bd8"], ["#f7797d", "#c471ed"],
];

function artGradient(animeId) {
  const [from, to] = PALETTES[Math.abs(Number(animeId) * 7 + 3) % PALETTES.length];
  return `linear-gradient(135deg, ${from}, ${to})`;
}

function monogram(title) {
  const letters = String(title).replace(/[^\p{L}\p{N}]/gu, "");
  return letters.slice(0, 2);
}

function describe(anime) {
  const parts = [];
  if (anime.type) parts.push(anime.type);
  if (anime.episodes) parts.push(anime.episodes === 1 ? "1 episode" : `${anime.episodes} episodes`);
  return parts.join(" · ");
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    headers: options.body ? { "Content-Type": "application/json" } : {},
    ...options,
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch (err) {
    payload = null;
  }
  if (!response.ok) {
    const message = payload && payload.detail ? payload.detail : `request failed (${response.status})`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return payload;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// --- search combobox (WAI-ARIA combobox with a listbox popup) ----------------------------

const combo = {
  input: null,
  list: null,
  options: [],
  active: -1,
  timer: null,
  query: "",
};

function setupSearch() {
  combo.input = $("search-input");
  combo.list = $("suggestions");
  combo.input.addEventListener("input", () => {
    clearTimeout(combo.timer);
    combo.timer = setTimeout(runSearch, 140);
  });
  combo.input.addEventListener("keydown", onSearchKey);
  combo.input.addEventListener("blur", () => setTimeout(closeSuggestions, 120));
  combo.input.addEventListener("focus", () => {
    if (combo.options.length) openSuggestions();
  });
}

async function runSearch() {
  const text = combo.input.value.trim();
  combo.query = text;
  if (!text) {
    combo.options = [];
    closeSuggestions();
    return;
  }
  try {
    const result = await api(`/anime/search?n=8&q=${encodeURIComponent(text)}`);
    if (combo.query !== text) return; // a newer keystroke already asked again
    combo.options = result.items;
    renderSuggestions();
  } catch (err) {
    setStatus(err.message, true);
  }
}

function renderSuggestions() {
  combo.list.replaceChildren();
  combo.active = combo.options.length ? 0 : -1;
  if (!combo.options.length) {
    combo.list.append(el("li", { class: "s-empty", role: "option", "aria-disabled": "true", text: "No matching title" }));
  }
  combo.options.forEach((anime, index) => {
    const option = el("li", { id: `suggestion-${index}`, role: "option", "aria-selected": "false" }, [
      el("span", { class: "s-title", text: anime.title }),
      el("span", { class: "s-meta", text: describe(anime) }),
    ]);
    // mousedown, not click: it runs before the input's blur closes the list.
    option.addEventListener("mousedown", (event) => {
      event.preventDefault();
      pickSuggestion(index);
    });
    combo.list.append(option);
  });
  openSuggestions();
  highlight(combo.active);
}

function openSuggestions() {
  combo.list.hidden = false;
  combo.input.setAttribute("aria-expanded", "true");
}

function closeSuggestions() {
  combo.list.hidden = true;
  combo.input.setAttribute("aria-expanded", "false");
  combo.input.removeAttribute("aria-activedescendant");
}

function highlight(index) {
  const items = combo.list.querySelectorAll('[role="option"][id]');
  items.forEach((item, i) => item.setAttribute("aria-selected", i === index ? "true" : "false"));
  if (index >= 0 && items[index]) {
    combo.input.setAttribute("aria-activedescendant", items[index].id);
    items[index].scrollIntoView({ block: "nearest" });
  } else {
    combo.input.removeAttribute("aria-activedescendant");
  }
}

function onSearchKey(event) {
  const count = combo.options.length;
  const open = !combo.list.hidden;
  if (event.key === "ArrowDown") {
    event.preventDefault();
    if (!open && count) openSuggestions();
    if (count) combo.active = (combo.active + 1) % count;
    highlight(combo.active);
  } else if (event.key === "ArrowUp") {
    event.preventDefault();
    if (count) combo.active = (combo.active - 1 + count) % count;
    highlight(combo.active);
  } else if (event.key === "Enter") {
    event.preventDefault();
    if (open && combo.active >= 0) pickSuggestion(combo.active);
  } else if (event.key === "Escape") {
    if (open) {
      event.preventDefault();
      closeSuggestions();
    } else {
      combo.input.value = "";
    }
  } else if (event.key === "Tab") {
    closeSuggestions();
  }
}

function pickSuggestion(index) {
  const anime = combo.options[index];
  if (!anime) return;
  addLiked(anime);
  combo.input.value = "";
  combo.options = [];
  combo.list.replaceChildren();
  closeSuggestions();
  combo.input.focus();
}

// --- liked list ------------------------------------------------------------------------

function addLiked(anime, rating = null) {
  if (state.liked.some((entry) => entry.anime_id === anime.anime_id)) {
    setStatus(`${anime.title} is already in your list.`);
    return;
  }
  state.liked.push({
    anime_id: anime.anime_id,
    title: anime.title,
    type: anime.type || null,
    episodes: anime.episodes || null,
    rating,
  });
  state.hidden = state.hidden.filter((entry) => entry.anime_id !== anime.anime_id);
  saveState();
  renderLiked();
  refresh();
}

function removeLiked(animeId) {
  state.liked = state.liked.filter((entry) => entry.anime_id !== animeId);
  saveState();
  renderLiked();
  refresh();
}

function renderLiked() {
  const list = $("liked-list");
  list.replaceChildren();
  for (const entry of state.liked) {
    const scoreSelect = el("select", { "aria-label": `Your score for ${entry.title}` });
    scoreSelect.append(el("option", { value: "", text: "no score" }));
    for (let score = 10; score >= 1; score -= 1) {
      scoreSelect.append(el("option", { value: String(score), text: `★ ${score}`, selected: entry.rating === score }));
    }
    scoreSelect.addEventListener("change", () => {
      entry.rating = scoreSelect.value ? Number(scoreSelect.value) : null;
      saveState();
      refresh();
    });
    list.append(
      el("li", {}, [
        el("span", { class: "swatch", style: `background:${artGradient(entry.anime_id)}` }),
        el("span", { class: "l-title", text: entry.title }, el("span", { class: "l-meta", text: describe(entry) })),
        scoreSelect,
        el("button", {
          type: "button",
          class: "icon-button",
          "aria-label": `Remove ${entry.title}`,
          text: "✕",
          onclick: () => removeLiked(entry.anime_id),
        }),
      ])
    );
  }
  $("liked-empty").hidden = state.liked.length > 0;
  $("hidden-box").hidden = state.hidden.length === 0;
  $("hidden-count").textContent = String(state.hidden.length);
}

function renderStarters() {
  const box = $("starter-picks");
  for (const title of STARTER_TITLES) {
    box.append(
      el("button", {
        type: "button",
        class: "chip-button",
        text: title,
        onclick: async () => {
          try {
            const result = await api(`/anime/search?n=1&q=${encodeURIComponent(title)}`);
            if (result.items.length) addLiked(result.items[0]);
          } catch (err) {
            setStatus(err.message, true);
          }
        },
      })
    );
  }
}

// --- filters ---------------------------------------------------------------------------

async function setupFilters() {
  try {
    filterLabels = await api("/filters");
  } catch (err) {
    setStatus(err.message, true);
  }
  const select = $("genre-select");
  for (const genre of filterLabels.genres) {
    if (genre === "Hentai") continue; // reachable through "Show adult titles"
    select.append(el("option", { value: genre, text: genre }));
  }
  select.addEventListener("change", () => {
    const genre = select.value;
    if (genre && !state.genres.includes(genre)) {
      state.genres.push(genre);
      saveState();
      renderFilters();
      refresh();
    }
    select.value = "";
  });

  const chips = $("type-chips");
  for (const type of filterLabels.types) {
    chips.append(
      el("button", {
        type: "button",
        "data-type": type,
        "aria-pressed": state.types.includes(type) ? "true" : "false",
        text: type,
        onclick: () => toggleType(type),
      })
    );
  }

  const adult = $("adult-toggle");
  adult.checked = Boolean(state.adult);
  adult.addEventListener("change", () => {
    state.adult = adult.checked;
    saveState();
    refresh();
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  renderFilters();
}

function toggleType(type) {
  state.types = state.types.includes(type)
    ? state.types.filter((value) => value !== type)
    : [...state.types, type];
  saveState();
  renderFilters();
  refresh();
}

function renderFilters() {
  for (const chip of $("type-chips").querySelectorAll("button")) {
    chip.setAttribute("aria-pressed", state.types.includes(chip.dataset.type) ? "true" : "false");
  }
  const active = $("active-genres");
  active.replaceChildren();
  for (const genre of state.genres) {
    active.append(
      el("li", {}, el("button", {
        type: "button",
        "aria-label": `Remove genre filter ${genre}`,
        text: `${genre} ✕`,
        onclick: () => {
          state.genres = state.genres.filter((value) => value !== genre);
          saveState();
          renderFilters();
          refresh();
        },
      }))
    );
  }
}

function filterQuery() {
  const params = new URLSearchParams({ n: String(LIST_LENGTH) });
  for (const genre of state.genres) params.append("genres", genre);
  for (const type of state.types) params.append("types", type);
  if (state.adult) params.set("include_adult", "true");
  return params.toString();
}

// --- recommendations -------------------------------------------------------------------

async function refresh() {
  const results = $("results");
  if (!state.liked.length) {
    results.replaceChildren(
      el("div", { class: "empty-state" }, [
        el("strong", { text: "Your next favourite is a few clicks away" }),
        "Add anime you liked on the left and recommendations appear here.",
      ])
    );
    setStatus("");
    return;
  }
  const requestNumber = ++recommendRequest;
  results.setAttribute("aria-busy", "true");
  const body = {
    history: state.liked.map((entry) =>
      entry.rating ? { anime_id: entry.anime_id, rating: entry.rating } : { anime_id: entry.anime_id }
    ),
    exclude: state.hidden.map((entry) => entry.anime_id),
  };
  try {
    const result = await api(`/recommendations?${filterQuery()}`, { method: "POST", body: JSON.stringify(body) });
    if (requestNumber !== recommendRequest) return; // a newer request replaced this one
    renderCards(result.items);
    const count = result.items.length;
    setStatus(count ? `${count} picks from ${state.liked.length} liked title${state.liked.length === 1 ? "" : "s"}.` : "");
  } catch (err) {
    if (requestNumber !== recommendRequest) return;
    renderCards([]);
    setStatus(err.message, true);
  } finally {
    if (requestNumber === recommendRequest) results.setAttribute("aria-busy", "false");
  }
}

function renderCards(items) {
  const results = $("results");
  results.replaceChildren();
  if (!items.length) {
    results.append(
      el("div", { class: "empty-state" }, [
        el("strong", { text: "Nothing matches these filters" }),
        "Try another genre or type, or clear a filter.",
      ])
    );
    return;
  }
  items.forEach((item, index) => results.append(card(item, index)));
}

function card(item, index) {
  // mean_score is the community's mean rating; score is the model's match score.
  const scoreText = typeof item.mean_score === "number" ? item.mean_score.toFixed(2) : null;
  const art = el("div", { class: "card-art", style: `background:${artGradient(item.anime_id)}` }, [
    el("span", { class: "monogram", "aria-hidden": "true", text: monogram(item.title) }),
    el("span", { class: "rank", text: `#${item.rank || index + 1}` }),
    scoreText ? el("span", { class: "score", text: `★ ${scoreText}` }) : null,
  ]);
  const genres = el("ul", { class: "genres", "aria-label": "Genres" },
    (item.genres || []).slice(0, 5).map((genre) => el("li", { text: genre })));
  const reasons = el("ul", { class: "reasons", "aria-label": "Why this anime" },
    (item.reasons || []).map((reason) => el("li", { text: reason })));
  const matchText = typeof item.score === "number" ? `match ${item.score.toFixed(3)}` : "";
  return el("article", { class: "card", "data-anime-id": String(item.anime_id), style: `animation-delay:${Math.min(index, 12) * 30}ms` }, [
    art,
    el("div", { class: "card-body" }, [
      el("h3", {}, el("button", { type: "button", text: item.title, onclick: () => openSimilar(item) })),
      el("p", { class: "meta", text: [describe(item), matchText].filter(Boolean).join(" · ") }),
      genres,
      reasons,
    ]),
    el("div", { class: "card-actions" }, [
      el("button", { type: "button", class: "add", text: "+ I liked it", onclick: () => addLiked(item) }),
      el("button", { type: "button", class: "similar", text: "Similar", onclick: () => openSimilar(item) }),
      el("button", {
        type: "button",
        class: "nope",
        "aria-label": `Not interested in ${item.title}`,
        text: "Not interested",
        onclick: () => markNotInterested(item),
      }),
    ]),
  ]);
}

function markNotInterested(item) {
  if (!state.hidden.some((entry) => entry.anime_id === item.anime_id)) {
    state.hidden.push({ anime_id: item.anime_id, title: item.title });
  }
  saveState();
  renderLiked();
  setStatus(`Hid ${item.title}.`);
  refresh();
}

// --- similar anime dialog --------------------------------------------------------------

async function openSimilar(item) {
  const dialog = $("similar-dialog");
  const list = $("similar-list");
  $("similar-title").textContent = `Similar to ${item.title}`;
  $("similar-sub").textContent = describe(item);
  list.replaceChildren(el("li", { text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  const params = new URLSearchParams({ n: "10" });
  if (state.adult) params.set("include_adult", "true");
  try {
    const result = await api(`/anime/${item.anime_id}/similar?${params}`);
    list.replaceChildren();
    for (const other of result.items) {
      list.append(
        el("li", {}, [
          el("span", { class: "swatch", style: `background:${artGradient(other.anime_id)}` }),
          el("span", { class: "l-title", text: other.title }, el("span", { class: "l-meta", text: [describe(other), (other.reasons || [])[0]].filter(Boolean).join(" · ") })),
          el("button", { type: "button", class: "chip-button", text: "+ Add", "aria-label": `Add ${other.title} to your list`, onclick: () => addLiked(other) }),
        ])
      );
    }
    if (!result.items.length) list.append(el("li", { text: "No similar anime found." }));
  } catch (err) {
    list.replaceChildren(el("li", { text: err.message }));
  }
}

function setupDialog() {
  const dialog = $("similar-dialog");
  $("similar-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });
}

async function showModelInfo() {
  try {
    const health = await api("/health");
    $("model-info").textContent = `${health.model} model · ${health.dataset || "dataset"} · ${Number(health.n_items || 0).toLocaleString()} anime`;
  } catch (err) {
    $("model-info").textContent = "";
  }
}

// --- start -----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  setupSearch();
  setupDialog();
  renderStarters();
  renderLiked();
  $("clear-hidden").addEventListener("click", () => {
    state.hidden = [];
    saveState();
    renderLiked();
    refresh();
  });
  showModelInfo();
  await setupFilters();
  refresh();
});
