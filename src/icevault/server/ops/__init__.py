"""The operator's rooms beside the Glacier edge: the admin API, metrics, health, the test
controls and the background work (jobs due, notifications, housekeeping, scrub). Each
enters through the same body reader, authorization and services as the Glacier API."""
