"""PostgreSQL layer: typed models, migrations and the queries the API and activities make."""
