// The runs list: start a run, and reload while any run is live.
"use strict";
const form = document.getElementById("new-run");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = form.elements.question.value.trim();
  const reply = await fetch("/runs", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({question}),
  });
  const body = await reply.json();
  if (!reply.ok) {
    document.getElementById("new-run-error").textContent = body.error;
    return;
  }
  location.href = "/ui/runs/" + encodeURIComponent(body.run_id);
});
if (document.querySelector('tr[data-live="yes"]')) {
  setTimeout(() => location.reload(), 3000);
}
