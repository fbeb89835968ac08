// The API is on the same origin: cutover's proxy routes /api to the backend.
"use strict";

async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.json();
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

async function main() {
  const status = document.getElementById("status");
  try {
    const [{ version }, { appointments }] = await Promise.all([
      getJSON("/api/version"),
      getJSON("/api/appointments"),
    ]);
    document.getElementById("backend-version").textContent = version;
    const body = document.querySelector("#appointments tbody");
    for (const a of appointments) {
      const row = document.createElement("tr");
      cell(row, new Date(a.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
      cell(row, a.patient);
      cell(row, a.clinician);
      cell(row, a.specialty);
      cell(row, a.minutes);
      body.appendChild(row);
    }
    document.getElementById("appointments").hidden = false;
    status.textContent = `${appointments.length} appointments`;
  } catch (err) {
    status.textContent = `Could not load appointments: ${err.message}`;
    status.className = "error";
  }
}

main();
