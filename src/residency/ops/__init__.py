"""Operating a running gateway: the admin HTTP server (`/metrics`, `/livez`, `/readyz`) that
`residency serve --admin-port` runs beside the S3 port, and `residency top`, which reads it."""
