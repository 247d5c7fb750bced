"""The automations the dbt project implies: derived from the catalog, nothing listed by hand."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import AutomationCore, CompoundTrigger, EventTrigger, Posture

from landing.catalog import Catalog
from automations.names import MANAGED_TAG
from landing.events import FILE_CREATED, PROJECT_CHANGED, PROJECT_PREFIX, dataset_resource_id
from landing.settings import Settings

PREFIX = "landing: "
# after the window: a file's event is stamped just before the sensor moves it into place, so a file whose event the
# window swallowed is in the accepted folder by the time its trailing run looks
TRAILING_MARGIN = timedelta(seconds=1)


def _on_landing(dataset: str, **kwargs) -> EventTrigger:
    return EventTrigger(
        expect={FILE_CREATED},
        match={"prefect.resource.id": dataset_resource_id(dataset)},
        **kwargs,
    )


def desired_automations(
    catalog: Catalog,
    build_deployment: UUID,
    stale_deployment: UUID,
    settings: Settings,
    reconcile_deployment: UUID | None = None,
) -> list[AutomationCore]:
    """Every automation the catalog implies, by name."""
    window = timedelta(seconds=settings.burst_window_seconds)
    out: list[AutomationCore] = []
    for name in sorted(catalog.datasets):
        ds = catalog.datasets[name]
        # Leading edge: the first file of a window builds at once. Trailing edge: a second run a second after the
        # window closes, so the files whose events the window swallowed are built too. A runner drops the trailing
        # run unstarted when it finds nothing new (automations/warm.py), so a lone file shows one run in the UI.
        # Both actions hang on one trigger: the server evaluates each event once per matching trigger (about
        # 20 ms each on SQLite here), so one trigger per dataset halves the cost of a burst.
        params = {"datasets": [name]}
        out.append(
            AutomationCore(
                name=f"{PREFIX}build {name}",
                description=f"A file landed for {name}: build source:{name}+ at the first file of each {window.seconds}s "
                f"window, and again when the window closes if files landed meanwhile.",
                tags=[MANAGED_TAG],
                trigger=_on_landing(name, posture=Posture.Reactive, threshold=1, within=window),
                actions=[
                    RunDeployment(source="selected", deployment_id=build_deployment, parameters=params),
                    RunDeployment(
                        source="selected",
                        deployment_id=build_deployment,
                        parameters={**params, "trailing": True},
                        schedule_after=window + TRAILING_MARGIN,
                    ),
                ],
            )
        )
        # Prefect's proactive triggers need a window of at least 10 s.
        stale_after = max(10, ds.stale_after_seconds) if ds.stale_after_seconds else None
        if stale_after:
            out.append(
                AutomationCore(
                    name=f"{PREFIX}stale {name}",
                    description=f"No file landed for {name} within {stale_after}s (its dbt freshness): emit landing.dataset.stale.",
                    tags=[MANAGED_TAG],
                    trigger=_on_landing(
                        name, posture=Posture.Proactive, threshold=1, within=timedelta(seconds=stale_after)
                    ),
                    actions=[
                        RunDeployment(
                            source="selected",
                            deployment_id=stale_deployment,
                            parameters={"dataset": name, "expected_every_seconds": stale_after},
                        )
                    ],
                )
            )
    for model in catalog.and_models():
        within = timedelta(seconds=model.within_seconds or settings.and_window_seconds)
        out.append(
            AutomationCore(
                name=f"{PREFIX}build {model.name} (all sources)",
                description=f"{model.name} needs {', '.join(model.datasets)}: build it once each has landed within {int(within.total_seconds())}s.",
                tags=[MANAGED_TAG],
                trigger=CompoundTrigger(
                    require="all",
                    within=within,
                    triggers=[
                        _on_landing(d, posture=Posture.Reactive, threshold=1, within=timedelta(0))
                        for d in model.datasets
                    ],
                ),
                actions=[
                    RunDeployment(
                        source="selected",
                        deployment_id=build_deployment,
                        parameters={"datasets": list(model.datasets), "and_models": [model.name]},
                    )
                ],
            )
        )
    if reconcile_deployment is not None:
        out.append(
            AutomationCore(
                name=f"{PREFIX}build after a dbt project change",
                description="apply.py synced a changed dbt project: a landing-reconcile run builds every dataset whose "
                "models changed, without waiting for a file.",
                tags=[MANAGED_TAG],
                trigger=EventTrigger(
                    expect={PROJECT_CHANGED},
                    match={"prefect.resource.id": f"{PROJECT_PREFIX}*"},
                    posture=Posture.Reactive,
                    threshold=1,
                    within=timedelta(0),
                ),
                actions=[RunDeployment(source="selected", deployment_id=reconcile_deployment, parameters={})],
            )
        )
    return out


def comparable(automation) -> dict:
    """The fields apply.py owns, without server-assigned ids, for an unchanged/changed decision."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "id"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    data = AutomationCore.model_validate(automation.model_dump()).model_dump(
        mode="json",
        include={
            "name",
            "description",
            "enabled",
            "tags",
            "trigger",
            "actions",
            "actions_on_trigger",
            "actions_on_resolve",
        },
    )
    return strip(data)
