"""Read a SAM template and turn it into what the offline stack deploys and runs.

Everything the local stack knows about the application comes from here, and everything here comes
from ``template.yaml``: the functions (code folder, handler, events), the state machines (their ASL
file and ``DefinitionSubstitutions``), the HTTP API routes, and the plain CloudFormation that moto
deploys. There is deliberately no second list of resources anywhere else.

The SAM → CloudFormation step is done offline by ``aws-sam-translator`` (what ``sam deploy`` and
CloudFormation's ``AWS::Serverless`` transform run). The translator wants artifacts in S3, so local
``CodeUri``/``ContentUri``/``DefinitionUri`` paths are swapped for ``s3://`` URIs first; the code
itself never needs to be in S3 because the local Lambda runner imports it from the project folder.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FUNCTION_TYPE = "AWS::Serverless::Function"
STATE_MACHINE_TYPE = "AWS::Serverless::StateMachine"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
HTTP_API_EVENT = "HttpApi"
# The resource type the translator makes of an HTTP API; moto's CloudFormation skips it.
CFN_HTTP_API_TYPE = "AWS::ApiGatewayV2::Api"


class TemplateError(ValueError):
    """The template cannot be run offline as written (a missing file, an unsupported form...)."""


@dataclass(frozen=True)
class HttpRoute:
    """One ``HttpApi`` event of a function: ``Method`` on ``Path`` (``$default`` = catch-all)."""

    function: str  # logical id of the function serving the route
    method: str  # upper case; "ANY" matches every method
    path: str  # e.g. "/models/{name}/predict", or "$default"
    event: str  # logical id of the event (e.g. "Predict")
    #: What guards it: "AWS_IAM" (SigV4 + execute-api:Invoke), "NONE", or a named authorizer.
    authorizer: str = "NONE"

    @property
    def route_key(self) -> str:
        """API Gateway's ``routeKey``: ``"POST /models/{name}/predict"`` or ``"$default"``."""
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class LayerSpec:
    """One entry of a function's ``Layers``: a layer of this template, or one from elsewhere."""

    name: str  # the template's logical id, or the layer's ARN as written
    #: The layer's ``ContentUri`` folder (absolute); None for a layer the template does not build
    #: (an ARN, a ``Fn::If``...), whose contents are unknown offline.
    content_dir: Path | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """Where a function's code lives and how to call it, from its template resource."""

    logical_id: str
    code_dir: Path  # absolute: CodeUri resolved against the template's folder
    handler: str  # "app.lambda_handler"
    runtime: str | None = None
    timeout: int = 3
    memory_size: int = 128
    routes: tuple[HttpRoute, ...] = ()
    #: Its ``Layers`` (the Globals' first, as SAM merges them); None when not known (a spec made
    #: by hand): then what it may import is not checked (:mod:`stepml.local.imports`).
    layers: tuple[LayerSpec, ...] | None = None

    @property
    def module_file(self) -> Path:
        """The file that defines the handler: ``pkg.mod.func`` → ``<code_dir>/pkg/mod.py``."""
        module, _, _ = self.handler.rpartition(".")
        if not module:
            raise TemplateError(
                f"{self.logical_id}: Handler {self.handler!r} is not 'module.function'"
            )
        return self.code_dir.joinpath(*module.split(".")).with_suffix(".py")

    @property
    def function_attribute(self) -> str:
        """The name of the handler callable inside :attr:`module_file`."""
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class StateMachineSpec:
    """A state machine's ASL file and the substitutions CloudFormation applies to it."""

    logical_id: str
    definition_file: Path | None  # from DefinitionUri; None for an inline Definition
    substitutions: Mapping[str, Any] = field(default_factory=dict)  # values may be intrinsics


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """A YAML loader that reads ``!Ref``/``!GetAtt``/``!Sub``… as CloudFormation's long form.

    A subclass, so that the process-wide ``yaml.SafeLoader`` is left alone (the translator's own
    ``yaml_parse`` registers the tags on ``SafeLoader`` itself).
    """


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    from samtranslator.yaml_helper import intrinsics_multi_constructor

    return intrinsics_multi_constructor(loader, "!", node)  # type: ignore[no-any-return]


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template_file(path: Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template (YAML or JSON, short-form intrinsics allowed)."""
    try:
        # A SafeLoader subclass: only the CloudFormation tags are added.
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    except FileNotFoundError:
        raise TemplateError(f"template not found: {path}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


class SamTemplate:
    """A parsed SAM template, with paths resolved against the template's own folder (as SAM does)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.base_dir = self.path.parent
        self.document = load_template_file(self.path)

    # -- reading -------------------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The template's resources by logical id."""
        return self.document["Resources"]  # type: ignore[no-any-return]

    def parameter_values(self, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Each template parameter's value: ``overrides`` first, else its ``Default``."""
        values = {
            name: str(spec["Default"])
            for name, spec in (self.document.get("Parameters") or {}).items()
            if isinstance(spec, dict) and "Default" in spec
        }
        values.update({k: str(v) for k, v in (overrides or {}).items()})
        return values

    def conditions(self, parameters: Mapping[str, Any] | None = None) -> dict[str, bool]:
        """Each of the template's ``Conditions`` for these parameter values (``Fn::Equals``,
        ``Fn::Not``, ``Fn::And``, ``Fn::Or`` and ``Condition`` over parameters), as CloudFormation
        decides them: which conditional resources the stack has."""
        values = self.parameter_values(parameters)
        declared = self.document.get("Conditions") or {}
        decided: dict[str, bool] = {}

        def operand(node: Any) -> str:
            if isinstance(node, dict) and set(node) == {"Ref"} and str(node["Ref"]) in values:
                return values[str(node["Ref"])]
            if isinstance(node, (str, int, float, bool)):
                return str(node)
            raise TemplateError(f"a condition compares {node!r}, which is not evaluated locally")

        def evaluate(node: Any) -> bool:
            if isinstance(node, dict) and len(node) == 1:
                ((function, argument),) = node.items()
                if function == "Fn::Equals":
                    return operand(argument[0]) == operand(argument[1])
                if function == "Fn::Not":
                    return not evaluate(argument[0])
                if function == "Fn::And":
                    return all(evaluate(item) for item in argument)
                if function == "Fn::Or":
                    return any(evaluate(item) for item in argument)
                if function == "Condition":
                    return condition(str(argument))
            raise TemplateError(f"the condition {node!r} is not evaluated locally")

        def condition(name: str) -> bool:
            if name not in decided:
                if name not in declared:
                    raise TemplateError(f"the template uses the condition {name!r}, which it does not declare")
                decided[name] = evaluate(declared[name])
            return decided[name]

        return {name: condition(name) for name in declared}

    def deployed_resources(self, parameters: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """The resources a stack of this template has with these parameter values: those without
        a ``Condition`` and those whose condition holds."""
        conditions = self.conditions(parameters)
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if "Condition" not in resource or conditions[str(resource["Condition"])]
        }

    def function_property(self, logical_id: str, name: str) -> Any:
        """A function's property ``name``, from its own properties or else the Globals."""
        own = self.resources[logical_id].get("Properties") or {}
        return own[name] if name in own else self._global_properties("Function").get(name)

    def _global_properties(self, section: str) -> dict[str, Any]:
        return dict((self.document.get("Globals") or {}).get(section) or {})

    def _resources_of_type(self, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") == resource_type:
                yield logical_id, resource.get("Properties") or {}

    def functions(self) -> dict[str, FunctionSpec]:
        """Every ``AWS::Serverless::Function`` with local code, by logical id (Globals applied)."""
        defaults = self._global_properties("Function")
        specs: dict[str, FunctionSpec] = {}
        for logical_id, own in self._resources_of_type(FUNCTION_TYPE):
            properties = {**defaults, **own}
            if properties.get("PackageType") == "Image" or "InlineCode" in properties:
                # Neither has a handler file to import; the local stack cannot run them.
                continue
            code_uri = properties.get("CodeUri")
            handler = properties.get("Handler")
            if not isinstance(code_uri, str) or code_uri.startswith("s3://") or not handler:
                continue
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=(self.base_dir / code_uri).resolve(),
                handler=str(handler),
                runtime=properties.get("Runtime"),
                timeout=int(properties.get("Timeout", 3)),
                memory_size=int(properties.get("MemorySize", 128)),
                routes=tuple(self._http_routes(logical_id, own, self._default_authorizer())),
                layers=tuple(
                    self._layer(entry)
                    for entry in [*(defaults.get("Layers") or []), *(own.get("Layers") or [])]
                ),
            )
        return specs

    def _layer(self, entry: Any) -> LayerSpec:
        """A ``Layers`` entry: ``!Ref`` to a layer of this template (with a local ``ContentUri``), or
        anything else (an ARN), whose contents the template does not say."""
        if isinstance(entry, dict) and set(entry) == {"Ref"}:
            name = str(entry["Ref"])
            resource = self.resources.get(name) or {}
            content = (resource.get("Properties") or {}).get("ContentUri")
            if resource.get("Type") == LAYER_TYPE and isinstance(content, str) and not content.startswith("s3://"):
                return LayerSpec(name=name, content_dir=(self.base_dir / content).resolve())
            return LayerSpec(name=name)
        return LayerSpec(name=entry if isinstance(entry, str) else json.dumps(entry))

    def _default_authorizer(self) -> str:
        """The implicit HTTP API's ``Auth.DefaultAuthorizer`` (Globals), else ``NONE``."""
        auth = self._global_properties("HttpApi").get("Auth") or {}
        return str(auth.get("DefaultAuthorizer") or "NONE")

    @staticmethod
    def _http_routes(
        logical_id: str, properties: Mapping[str, Any], default_authorizer: str = "NONE"
    ) -> Iterator[HttpRoute]:
        for event_id, event in (properties.get("Events") or {}).items():
            if event.get("Type") != HTTP_API_EVENT:
                continue
            event_properties = event.get("Properties") or {}
            # SAM: an HttpApi event without Path/Method is the API's $default (catch-all) route.
            path = str(event_properties.get("Path", "$default"))
            method = str(event_properties.get("Method", "ANY")).upper()
            if method in ("X-AMAZON-APIGATEWAY-ANY-METHOD", "*"):
                method = "ANY"
            auth = event_properties.get("Auth") or {}
            authorizer = str(auth.get("Authorizer") or default_authorizer)
            yield HttpRoute(function=logical_id, method=method, path=path, event=event_id,
                            authorizer=authorizer)

    def http_routes(self) -> list[HttpRoute]:
        """All ``HttpApi`` routes of all functions."""
        return [route for spec in self.functions().values() for route in spec.routes]

    def state_machines(self) -> dict[str, StateMachineSpec]:
        """Every ``AWS::Serverless::StateMachine``, by logical id."""
        specs: dict[str, StateMachineSpec] = {}
        for logical_id, properties in self._resources_of_type(STATE_MACHINE_TYPE):
            uri = properties.get("DefinitionUri")
            definition_file: Path | None = None
            if isinstance(uri, str) and not uri.startswith("s3://"):
                definition_file = (self.base_dir / uri).resolve()
                if not definition_file.is_file():
                    raise TemplateError(f"{logical_id}: DefinitionUri {uri!r} is not a file")
            elif uri is not None:
                raise TemplateError(
                    f"{logical_id}: only a local DefinitionUri file can run offline, not {uri!r}"
                )
            specs[logical_id] = StateMachineSpec(
                logical_id=logical_id,
                definition_file=definition_file,
                substitutions=dict(properties.get("DefinitionSubstitutions") or {}),
            )
        return specs

    # -- translating ---------------------------------------------------------------------------

    def to_cloudformation(
        self,
        *,
        artifact_bucket: str,
        code_key: str,
        region: str,
        parameters: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Translate to plain CloudFormation that moto can deploy.

        Local artifact paths become ``s3://<artifact_bucket>/<code_key>`` (a placeholder zip the
        caller uploads), and each state machine's ``DefinitionS3Location`` + ``DefinitionSubstitutions``
        become one ``DefinitionString``: a ``Fn::Join`` of the ASL text with the substitution values
        spliced in, so moto's CloudFormation resolves the ``Ref``/``GetAtt`` values itself.
        """
        import boto3
        from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
        from samtranslator.parser.parser import Parser
        from samtranslator.translator.translator import Translator

        sam = copy.deepcopy(self.document)
        placeholder = f"s3://{artifact_bucket}/{code_key}"
        for resource in sam["Resources"].values():
            properties = resource.setdefault("Properties", {})
            if resource.get("Type") == FUNCTION_TYPE and "InlineCode" not in properties:
                properties["CodeUri"] = placeholder
            elif resource.get("Type") == LAYER_TYPE:
                properties["ContentUri"] = placeholder
            elif resource.get("Type") == STATE_MACHINE_TYPE and "DefinitionUri" in properties:
                properties["DefinitionUri"] = placeholder
        # CodeUri may also come from Globals; the swap above covers each function explicitly.
        globals_function = (sam.get("Globals") or {}).get("Function") or {}
        globals_function.pop("CodeUri", None)

        # The translator reads the region (for ARNs and pseudo parameters) from a boto3 session;
        # an explicit one with fake credentials keeps it offline and independent of ~/.aws.
        session = boto3.Session(
            region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        # Our own (dummy-published) metrics: the translator's default one warns when collected.
        metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
        translator = Translator(None, Parser(), boto_session=session, metrics=metrics)
        cfn: dict[str, Any] = translator.translate(
            sam,
            parameter_values=dict(parameters or {}),
            # Only managed-policy *names* need IAM; ARNs and inline statements do not.
            get_managed_policy_map=dict,
        )
        metrics.publish()
        for logical_id, spec in self.state_machines().items():
            resource = cfn["Resources"].get(logical_id)
            if resource is not None:
                _inline_definition(resource["Properties"], spec)
        return cfn


def _inline_definition(properties: dict[str, Any], spec: StateMachineSpec) -> None:
    """Replace the S3 definition + substitutions by a ``DefinitionString`` CloudFormation resolves."""
    substitutions = properties.pop("DefinitionSubstitutions", None) or {}
    if spec.definition_file is not None:
        properties.pop("DefinitionS3Location", None)
        text = spec.definition_file.read_text(encoding="utf-8")
    else:
        text_or_expression = _literal_text(properties.get("DefinitionString"))
        if text_or_expression is None:
            if substitutions:
                raise TemplateError(
                    f"{spec.logical_id}: cannot apply DefinitionSubstitutions to a computed "
                    "definition offline"
                )
            return
        text = text_or_expression
    if not substitutions:
        properties["DefinitionString"] = text
        return
    # Split on ${Name} for the declared names only: like CloudFormation, anything else that looks
    # like a placeholder is left as written.
    names = "|".join(re.escape(name) for name in sorted(substitutions, key=len, reverse=True))
    pieces = re.split(r"\$\{(" + names + r")\}", text)
    parts: list[Any] = [
        _substitution_value(substitutions[piece]) if index % 2 else piece
        for index, piece in enumerate(pieces)
    ]
    properties["DefinitionString"] = {"Fn::Join": ["", [p for p in parts if p != ""]]}


def _substitution_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value  # a string or an intrinsic function for moto to resolve


def _literal_text(definition: Any) -> str | None:
    """The text of a ``DefinitionString`` made only of literals (the translator joins lines)."""
    if isinstance(definition, str):
        return definition
    if isinstance(definition, dict) and set(definition) == {"Fn::Join"}:
        separator, parts = definition["Fn::Join"]
        if isinstance(separator, str) and all(isinstance(part, str) for part in parts):
            return str(separator).join(parts)
    return None


_EXECUTE_API_URL = re.compile(
    r"https://\$\{(?P<api>[A-Za-z0-9]+)\}\.execute-api\.\$\{AWS::Region\}\."
    r"(?:\$\{AWS::URLSuffix\}|amazonaws\.com)"
)


def localize_outputs(cfn: dict[str, Any], api_base_url: str) -> None:
    """Point outputs built from an HTTP API's execute-api URL at the local API server.

    moto's CloudFormation skips ``AWS::ApiGatewayV2::Api``, so ``https://${ServerlessHttpApi}.
    execute-api…`` would stay unresolved; locally the same output names the emulator instead, and
    the CLI finds the API the same way on AWS and offline. ``api_base_url`` has no trailing slash.
    """
    http_apis = {
        logical_id
        for logical_id, resource in cfn.get("Resources", {}).items()
        if resource.get("Type") == CFN_HTTP_API_TYPE
    }

    def rewrite(node: Any) -> Any:
        if isinstance(node, str):
            return _EXECUTE_API_URL.sub(
                lambda m: api_base_url if m.group("api") in http_apis else m.group(0), node
            )
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if isinstance(node, dict):
            return {key: rewrite(value) for key, value in node.items()}
        return node

    for output in (cfn.get("Outputs") or {}).values():
        output["Value"] = rewrite(output.get("Value"))


#: The id of the local HTTP API (moto's CloudFormation creates no ``AWS::ApiGatewayV2::Api``).
LOCAL_API_ID = "local-http-api"


def localize_api_ids(cfn: dict[str, Any], api_id: str = LOCAL_API_ID) -> None:
    """Let ``${ServerlessHttpApi}`` in the resources' ``Fn::Sub`` strings name the local API.

    The execute-api ARNs of the template's managed policies (``…:${ServerlessHttpApi}/*/GET/models``)
    then name what the local API authorizes requests on; moto would leave them unresolved.
    """
    http_apis = {
        logical_id
        for logical_id, resource in cfn.get("Resources", {}).items()
        if resource.get("Type") == CFN_HTTP_API_TYPE
    }

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        sub = node.get("Fn::Sub") if len(node) == 1 else None
        if isinstance(sub, str):
            return {"Fn::Sub": _SUB_NAME.sub(
                lambda m: api_id if m.group(1) in http_apis else m.group(0), sub)}
        return {key: rewrite(value) for key, value in node.items()}

    cfn["Resources"] = {
        logical_id: resource if resource.get("Type") == CFN_HTTP_API_TYPE else rewrite(resource)
        for logical_id, resource in cfn.get("Resources", {}).items()
    }


def dumps(cfn: Mapping[str, Any]) -> str:
    """The template body for ``create_stack``."""
    return json.dumps(cfn, default=str)


_SUB_NAME = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve(node: Any, refs: Mapping[str, str], attributes: Mapping[str, str]) -> Any:
    """``node`` with ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` replaced by values.

    For the properties the local stack applies itself (those moto's CloudFormation skips):
    ``refs`` maps parameters, pseudo parameters and logical ids to values, ``attributes`` maps
    ``"LogicalId.Attribute"``. A name in neither is a :class:`TemplateError`.
    """

    def lookup(name: str) -> str:
        if name in refs:
            return refs[name]
        if name in attributes:
            return attributes[name]
        raise TemplateError(f"cannot resolve {name!r} locally")

    if isinstance(node, list):
        return [resolve(item, refs, attributes) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return lookup(str(node["Ref"]))
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        return lookup(".".join(target) if isinstance(target, list) else str(target))
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        return _SUB_NAME.sub(lambda match: lookup(match.group(1)), node["Fn::Sub"])
    return {key: resolve(value, refs, attributes) for key, value in node.items()}
