# One image, two commands: the API (`uvicorn api.app:create_app --factory`) and the worker
# (`python -m worker`); `python -m db.migrate` applies migrations.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY activities activities
COPY workflows workflows
COPY scheduling scheduling
COPY notifications notifications
COPY db db
COPY devstack devstack
COPY cli cli
COPY contract.py settings.py encryption.py connections.py worker.py dispatch.py ./
COPY invariants.py loadtest.py logs.py tracing.py waitlist_dispatch.py ./
# Bytecode compiled at build: the worker's sandbox imports workflow modules per workflow.
RUN pip install --no-cache-dir . \
    && python -m compileall -q /app \
    && useradd --system --uid 10001 holdfast
USER holdfast
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
