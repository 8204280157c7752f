// Run inspector: while the viewer's own run is in flight, show its status live, then reload the
// page so every section shows the finished run.
const root = document.getElementById("run");
if (root && root.dataset.live) {
  const badge = document.getElementById("run-status");
  const source = new EventSource(`/v1/runs/${encodeURIComponent(root.dataset.run)}/events`);
  source.addEventListener("status", (message) => {
    const { status } = JSON.parse(message.data);
    badge.textContent = status;
    badge.className = `pill st-${status}`;
  });
  source.addEventListener("end", () => {
    source.close();
    location.reload();
  });
}
