"""The custom search attributes are declared once (contract.py); what cannot import that
declaration, docker-compose.yml, is checked against it."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.temporal import cli_search_attributes

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def test_docker_compose_registers_the_declared_search_attributes() -> None:
    listed = re.search(r"for attr in ([^;]+);", COMPOSE.read_text())
    assert listed is not None, "docker-compose.yml no longer loops over the attributes"
    assert listed.group(1).split() == cli_search_attributes()
