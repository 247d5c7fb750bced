"""The names the automations, the build deployment and the operator commands share: one spelling each."""

BUILD_FLOW = "dbt-build"
BUILD_DEPLOYMENT = "dbt-build"
STALE_FLOW = "landing-stale"
STALE_DEPLOYMENT = "landing-stale"
RECONCILE_FLOW = "landing-reconcile"
RECONCILE_DEPLOYMENT = "landing-reconcile"
MAINTAIN_FLOW = "landing-maintain"
MAINTAIN_DEPLOYMENT = "landing-maintain"
VERIFY_FLOW = "landing-verify"
VERIFY_DEPLOYMENT = "landing-verify"
MANAGED_TAG = "managed-by:landing-apply"  # on every automation apply.py owns


def deployment_path(flow: str, deployment: str) -> str:
    """`<flow>/<deployment>`, as Prefect names a deployment."""
    return f"{flow}/{deployment}"


BUILD = deployment_path(BUILD_FLOW, BUILD_DEPLOYMENT)
STALE = deployment_path(STALE_FLOW, STALE_DEPLOYMENT)
RECONCILE = deployment_path(RECONCILE_FLOW, RECONCILE_DEPLOYMENT)
VERIFY = deployment_path(VERIFY_FLOW, VERIFY_DEPLOYMENT)
MAINTAIN = deployment_path(MAINTAIN_FLOW, MAINTAIN_DEPLOYMENT)
