"""The search page served at `/`: plain HTML and a little JavaScript, no build step.

`/?q=TEXT` searches on load, so a link (or a headless browser) can open a result page directly.
"""

SEARCH_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ddro search</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  form { display: flex; gap: .5rem; }
  input[type=search] { flex: 1; font-size: 1.1rem; padding: .4rem .6rem; }
  button { font-size: 1.1rem; padding: .4rem 1rem; }
  #status { color: #666; margin: .8rem 0; }
  ol { padding-left: 1.5rem; }
  li { margin-bottom: 1rem; }
  .title { font-size: 1.05rem; color: #1a0dab; cursor: pointer; text-decoration: underline; }
  .meta { color: #666; font-size: .85rem; }
  .full { white-space: pre-wrap; background: #f6f6f6; padding: .6rem; margin-top: .4rem; }
</style>
</head>
<body>
<h1>ddro search</h1>
<form id="search">
  <input type="search" id="q" name="q" placeholder="Search the collection" autofocus>
  <button type="submit">Search</button>
</form>
<div id="status"></div>
<ol id="results"></ol>
<script>
const results = document.getElementById("results"), status = document.getElementById("status");

function element(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function openDocument(item, docid) {
  const shown = item.querySelector(".full");
  if (shown) { shown.remove(); return; }
  const answer = await fetch("/v1/doc/" + encodeURIComponent(docid));
  const doc = await answer.json();
  item.appendChild(element("div", "full", answer.ok ? doc.text : doc.detail));
}

async function search(text) {
  results.replaceChildren();
  if (!text.trim()) { status.textContent = ""; return; }
  status.textContent = "Searching…";
  const started = performance.now();
  const answer = await fetch("/v1/search?hits=10&query=" + encodeURIComponent(text));
  const body = await answer.json();
  if (!answer.ok) { status.textContent = "Error " + answer.status + ": " + body.detail; return; }
  status.textContent = body.candidates.length + " documents in " + Math.round(performance.now() - started) + " ms";
  for (const hit of body.candidates) {
    const item = element("li", "hit");
    const doc = hit.doc || {title: "", snippet: ""};
    const title = element("div", "title", doc.title || hit.docid);
    title.addEventListener("click", () => openDocument(item, hit.docid));
    item.append(title, element("div", "snippet", doc.snippet),
                element("div", "meta", "doc " + hit.docid + " · score " + hit.score.toFixed(3)));
    results.appendChild(item);
  }
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = document.getElementById("q").value;
  history.replaceState(null, "", "/?q=" + encodeURIComponent(text));
  search(text);
});
const initial = new URLSearchParams(location.search).get("q");
if (initial) { document.getElementById("q").value = initial; search(initial); }
</script>
</body>
</html>
"""
