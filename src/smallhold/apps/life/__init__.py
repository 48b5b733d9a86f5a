"""life: a personal life OS on the person's own exports, all inside the vault.

Layout: ``models`` (records as the sources said them), ``sources/`` (one streaming parser per
export format: calendar, mail, money, health), ``store`` (life's tables), ``ingest`` (which
export a file is; one transaction per file), ``values`` (what the person says matters),
``daily`` (facts per local day), ``checks/`` (the detectors), ``alerts`` (what they cite),
``watch`` (the 6-hourly durable check), ``cli`` (``smallhold life``). This module only
declares the app; it imports nothing heavy.
"""

from smallhold.apps.life.errors import LifeError
from smallhold.kit.spec import AppSpec, Command, Ref

APP = AppSpec(
    name="life",
    summary="A private picture of your life from your own exports, with cited warnings.",
    errors=LifeError,
    commands=[Command("life", Ref("smallhold.apps.life.cli:life", extra="life"),
                      "Your calendar, money, health and mail, privately: ingest, status.")],
    migrations=Ref("smallhold.apps.life.store:SCHEMA"),
    jobs=Ref("smallhold.apps.life.watch:jobs", extra="life"),
    web=Ref("smallhold.apps.life.web:pages_for", extra="life"),
    extra="life",
)

__all__ = ["APP"]
