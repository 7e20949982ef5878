"""What makes a second ``pulumi up`` a no-op and a replacement possible, for every resource of
the stack, whichever component made it (a stack transformation, so services, networks and
secrets added later get it too).

Read against the provider's schema (pulumi/pulumi-docker,
provider/cmd/pulumi-resource-docker/schema.json) and its Terraform source
(kreuzwerker/terraform-provider-docker):

- ``Service``: ``name`` and ``mode`` are replace-on-change, and the name is fixed
  (``<stack>_<key>``: other services reach it by that alias); Pulumi's default,
  create-before-delete, would create a second service of the same name, which Swarm refuses.
  So a service is deleted first.
- ``Network``: every input is replace-on-change, the name is fixed too, and ``options`` is
  also computed: the engine reports options of its own (``...vxlanid_list`` beside
  ``encrypted``), so it would differ on every run. ``options`` is ignored after creation; a
  change of encryption is carried by a label (stack.components.network), which settles.
- ``Service`` again: the provider creates with ``QueryRegistry``, and the Docker client then
  asks the registry about the image (pinned or not) and adds the platforms it answers to
  ``taskSpec.placement.platforms`` (docker/docker client/service_create.go); updates do not,
  and ``platforms`` is optional, not computed, so a service with placement constraints would
  be updated (restarted) by the second ``pulumi up`` only to drop them. They are ignored;
  every service sends a ``placement`` (stack.components.render), as ignoring a path whose
  parent the old inputs have and the new ones lack is an error of the engine's.
- ``Secret`` and ``ServiceConfig``: their names carry a digest of their content, so the
  default order is the right one: the new object exists before the services move to it,
  and the old one is deleted after.
"""

from __future__ import annotations

import pulumi

SERVICE = "docker:index/service:Service"
NETWORK = "docker:index/network:Network"
# Inputs the engine fills in itself and Pulumi must not diff.
IGNORED: dict[str, list[str]] = {
    NETWORK: ["options"],
    SERVICE: ["taskSpec.placement.platforms"],
}
DELETE_FIRST = {SERVICE, NETWORK}


def converge_policy(
    args: pulumi.ResourceTransformationArgs,
    provider: pulumi.ProviderResource | None = None,
) -> pulumi.ResourceTransformationResult | None:
    if args.type_ not in DELETE_FIRST and args.type_ not in IGNORED:
        return None
    extra = pulumi.ResourceOptions(
        delete_before_replace=True if args.type_ in DELETE_FIRST else None,
        ignore_changes=sorted({*(args.opts.ignore_changes or []), *IGNORED.get(args.type_, [])})
        or None,
        # Services pull with the registry credentials of this provider, if any.
        provider=provider if args.type_ == SERVICE and args.opts.provider is None else None,
    )
    return pulumi.ResourceTransformationResult(
        props=args.props, opts=pulumi.ResourceOptions.merge(args.opts, extra)
    )


def register(provider: pulumi.ProviderResource | None = None) -> None:
    """Before any resource is made: transformations only see resources registered after.

    Once per stack: a process that runs the program more than once on one root resource
    (the unit tests' mocks do) replaces the earlier policy instead of stacking another."""

    def policy(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        return converge_policy(args, provider)

    policy._homerun_converge = True  # type: ignore[attr-defined]
    root = pulumi.runtime.get_root_resource()
    if root is not None and root._transformations:
        root._transformations = [
            t for t in root._transformations if not getattr(t, "_homerun_converge", False)
        ]
    pulumi.runtime.register_stack_transformation(policy)
