"""The automations the catalog implies, and the plan apply.py makes against what the server holds."""

from __future__ import annotations

from uuid import uuid4

from prefect.events.schemas.automations import AutomationCore, CompoundTrigger, EventTrigger

from automations.apply import make_plan
from automations.names import MANAGED_TAG
from automations.plan import comparable, desired_automations

BUILD, STALE = uuid4(), uuid4()


def test_each_dataset_gets_one_build_automation_with_a_leading_and_a_trailing_run(catalog, settings):
    wanted = {a.name: a for a in desired_automations(catalog, BUILD, STALE, settings)}
    build = wanted["landing: build shop.orders"]
    assert build.trigger.match.model_dump() == {"prefect.resource.id": "landing.dataset.shop.orders"}
    assert build.trigger.expect == {"landing.file.created"}
    assert [a.deployment_id for a in build.actions] == [BUILD, BUILD]
    assert build.actions[0].parameters == {"datasets": ["shop.orders"]}
    # the trailing run: a second after the window, marked so that a runner drops it when nothing new landed
    assert build.actions[1].parameters == {"datasets": ["shop.orders"], "trailing": True}
    assert build.actions[1].schedule_after.total_seconds() == settings.burst_window_seconds + 1
    assert MANAGED_TAG in build.tags


def test_only_datasets_with_a_freshness_get_a_staleness_automation(catalog, settings):
    names = [a.name for a in desired_automations(catalog, BUILD, STALE, settings)]
    assert [n for n in names if n.startswith("landing: stale")] == ["landing: stale shop.products"]


def test_a_model_needing_all_its_sources_waits_for_each_within_its_window(catalog, settings):
    wanted = {a.name: a for a in desired_automations(catalog, BUILD, STALE, settings)}
    both = wanted["landing: build order_lines (all sources)"]
    assert isinstance(both.trigger, CompoundTrigger) and both.trigger.require == "all"
    assert both.trigger.within.total_seconds() == 600
    assert [t.match.model_dump()["prefect.resource.id"] for t in both.trigger.triggers] == [
        "landing.dataset.shop.orders",
        "landing.dataset.shop.products",
    ]
    assert both.actions[0].parameters == {"datasets": ["shop.orders", "shop.products"], "and_models": ["order_lines"]}


def _existing(automation: AutomationCore) -> AutomationCore:
    """What the server hands back: the same automation with ids of its own on the trigger."""
    return AutomationCore.model_validate(automation.model_dump())


def test_the_plan_creates_what_is_missing_and_leaves_what_matches(catalog, settings):
    wanted = desired_automations(catalog, BUILD, STALE, settings)
    first = make_plan(wanted, [])
    assert len(first.create) == len(wanted) and not first.update and not first.delete
    again = make_plan(wanted, [_existing(a) for a in wanted])
    assert len(again.unchanged) == len(wanted) and not again.create and not again.update


def test_the_plan_updates_a_changed_automation_and_deletes_only_managed_ones(catalog, settings):
    wanted = desired_automations(catalog, BUILD, STALE, settings)
    changed = _existing(wanted[0]).model_copy(update={"description": "edited by hand"})
    gone = AutomationCore(
        name="landing: build old.table", tags=[MANAGED_TAG], trigger=EventTrigger(expect={"x"}), actions=[]
    )
    mine = AutomationCore(name="someone else's", tags=["team"], trigger=EventTrigger(expect={"x"}), actions=[])
    plan = make_plan(wanted, [changed, gone, mine, *[_existing(a) for a in wanted[1:]]])
    assert [d.name for _, d in plan.update] == [wanted[0].name]
    assert [a.name for a in plan.delete] == ["landing: build old.table"]
    assert comparable(plan.update[0][1]) != comparable(changed)


def test_a_project_change_starts_the_reconcile_run(catalog, settings):
    reconcile = uuid4()
    wanted = {a.name: a for a in desired_automations(catalog, BUILD, STALE, settings, reconcile_deployment=reconcile)}
    changed = wanted["landing: build after a dbt project change"]
    assert changed.trigger.expect == {"landing.project.changed"}
    assert [a.deployment_id for a in changed.actions] == [reconcile]
