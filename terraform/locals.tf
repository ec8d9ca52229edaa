locals {
  # The one description of how Rotor is wired (functions, permissions, ASL placeholders,
  # rules, subscriptions, table keys, settings). Nothing below types a function name, an
  # action, a rule topic or an environment variable again: it is all derived from here.
  wiring = jsondecode(file("${path.module}/../wiring/wiring.json"))

  # domain/topics.ts TOPIC_ROOT. Terraform cannot import TypeScript; the rule SQL assertion in
  # tests/render.tftest.hcl pins the strings built from it to domain/topics.ts ruleSqlFor().
  topic_root = "management/topic"

  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  artifacts_dir = coalesce(var.artifacts_dir, "${path.module}/../dist/functions")

  # IoT rule names allow only [a-zA-Z0-9_] (domain/topics.ts ruleNameFor).
  rule_prefix = replace(var.name_prefix, "/[^a-zA-Z0-9_]/", "_")

  tags = merge(var.tags, { "rotor:component" = "rotor" })

  function_names = { for name, _ in local.wiring.functions : name => "${var.name_prefix}-${name}" }
  table_name     = "${var.name_prefix}-rotations"

  # ARNs computed from names, not read from the resources: the functions need the state
  # machine's ARN and the state machine needs the functions' ARNs, which would be a cycle.
  # The state machines' are stepfunctions.tf's state_machine_arns.
  arn_prefix        = "arn:${local.partition}"
  function_arns     = { for name, full in local.function_names : name => "${local.arn_prefix}:lambda:${local.region}:${local.account}:function:${full}" }
  state_machine_arn = local.state_machine_arns[local.wiring.stateMachine.name]
  iot_arn           = "${local.arn_prefix}:iot:${local.region}:${local.account}"

  # Settings by their wiring name. Every wiring setting must appear here (a missing one
  # fails the lookup below at plan time, and the defaults test compares the key sets).
  settings = merge({
    csrTimeoutSeconds       = var.csr_timeout_seconds
    csrRequestRetries       = var.csr_request_retries
    csrRetryIntervalSeconds = var.csr_retry_interval_seconds
    ackTimeoutSeconds       = var.ack_timeout_seconds
    retireMode              = var.retire_mode
    auditChecks             = join(",", var.audit_checks)
    logLevel                = var.log_level
    historyRetentionDays    = var.history_retention_days
  }, local.signer_settings, local.trust_settings, local.ca_rollover_settings)

  # Every reference the wiring may use ('table', 'stateMachine', 'function:NAME',
  # 'setting:NAME', 'topic:audit', 'topic:escalation', 'iotDataEndpoint', 'region'), as
  # wiring/index.ts resolveReference does. An unknown reference fails the plan.
  references = merge(
    {
      "table"            = aws_dynamodb_table.rotations.name
      "stateMachine"     = local.state_machine_arn
      "iotDataEndpoint"  = "https://${data.aws_iot_endpoint.data.endpoint_address}"
      "region"           = local.region
      "statusIndex"      = local.wiring.table.statusIndex.name
      "topic:audit"      = aws_sns_topic.audit.arn
      "topic:escalation" = aws_sns_topic.escalation.arn
      # The CA rollover's state machine (ca-rollover.tf): start-rotations starts it on a CA finding.
      "caRolloverStateMachine" = local.ca_rollover_state_machine_arn
    },
    { for name, value in local.settings : "setting:${name}" => value },
    { for name, arn in local.function_arns : "function:${name}" => arn },
  )

  function_environment = {
    for name, spec in local.wiring.functions : name => merge(
      { for key, ref in spec.environment : key => tostring(local.references[ref]) },
      {
        POWERTOOLS_SERVICE_NAME      = var.name_prefix
        POWERTOOLS_METRICS_NAMESPACE = "Rotor"
      },
      # Every function gets the pacing settings (pacing.tf): the pacing code runs in several.
      local.pacing_environment,
      # start-rotations also the renewal calendar's (calendar.tf).
      name == local.calendar_function ? local.calendar_environment : {},
    )
  }

  # What each IAM resource kind of the wiring stands for. '*' only for actions that have no
  # resource-level permissions in IAM (iot:ListAuditFindings, iot:ListPrincipalThings,
  # iot:CreateCertificateFromCsr, states:SendTaskSuccess/SendTaskFailure: a task token, not
  # an ARN, names what they act on), so nothing narrower can be written for them.
  resource_kinds = merge(local.device_topic_kinds, local.signer_resource_kinds, local.ca_rollover_resource_kinds, local.state_machine_function_kinds, {
    "*" = {
      sid       = "NoResourceLevelPermissions"
      resources = ["*"]
    }
    "table" = {
      sid       = "RotationTable"
      resources = [aws_dynamodb_table.rotations.arn, "${aws_dynamodb_table.rotations.arn}/index/${local.wiring.table.statusIndex.name}"]
    }
    "stateMachine" = {
      sid       = "RotationStateMachine"
      resources = [local.state_machine_arn]
    }
    "certificates" = {
      sid       = "DeviceCertificates"
      resources = ["${local.iot_arn}:cert/*"]
    }
    "things" = {
      sid       = "Things"
      resources = ["${local.iot_arn}:thing/*"]
    }
    "topic:escalation" = {
      sid       = "EscalationTopic"
      resources = [aws_sns_topic.escalation.arn]
    }
    "topic:audit" = {
      sid       = "AuditTopic"
      resources = [aws_sns_topic.audit.arn]
    }
  })

  # iot:Publish per cloud → device message type: the wiring kind 'deviceTopics:TYPE[,TYPE]'
  # grants exactly management/topic/*/TYPE, so request-csr can send csr_req but never crt_done
  # (test/contract/iam.test.ts holds each kind to the types the function's code sends).
  device_topic_kinds = {
    for kind in distinct(flatten([for name, spec in local.wiring.functions : [for action, k in spec.permissions : k if startswith(k, "deviceTopics:")]])) :
    kind => {
      sid       = "DeviceTopics${join("", [for type in split(",", trimprefix(kind, "deviceTopics:")) : join("", [for part in split("_", type) : title(part)])])}"
      resources = [for type in split(",", trimprefix(kind, "deviceTopics:")) : "${local.iot_arn}:topic/${local.topic_root}/*/${type}"]
    }
  }

  # One policy document per function from its wiring permissions: one statement per
  # resource kind, holding exactly the actions the wiring lists for that kind. 'self' is the
  # function's own ARN (start-rotations invokes itself to fan out a large audit). The
  # permissions are those granted (signer.tf granted_permissions: no Private CA without one).
  function_policies = {
    for name, permissions in local.granted_permissions : name => jsonencode({
      Version = "2012-10-17"
      Statement = [
        for kind in sort(distinct(values(permissions))) : {
          Sid      = kind == "self" ? "Self" : local.resource_kinds[kind].sid
          Effect   = "Allow"
          Action   = sort([for action, k in permissions : action if k == kind])
          Resource = kind == "self" ? [local.function_arns[name]] : local.resource_kinds[kind].resources
        }
      ]
    })
  }

  rules = { for rule in local.wiring.rules : rule.messageType => rule }

  # domain/topics.ts ruleSqlFor(type). The payload is base64 so that a non-JSON payload still
  # reaches the handler; principal() is the certificate id the ack check relies on.
  rule_sql = {
    for type, _ in local.rules : type => "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, topic() AS topic, timestamp() AS receivedAt FROM '${local.topic_root}/+/${type}'"
  }

  subscriptions = { for s in local.wiring.subscriptions : "${s.topic}-${s.function}" => s }
  topic_arns = {
    audit      = aws_sns_topic.audit.arn
    escalation = aws_sns_topic.escalation.arn
  }

  sns_kms_key = coalesce(var.sns_kms_key_arn, "alias/aws/sns")

  # The functions Lambda invokes asynchronously (the audit subscription, the fan-out of
  # start-rotations), each with a dead-letter queue (sqs.tf, lambda.tf).
  async_functions = toset(local.wiring.asyncInvocations.functions)

  # The queue between the IoT rules and the function they feed (issue 10 part 4; sqs.tf,
  # lambda.tf): its dead-letter queue is the function's, named as the asynchronous ones are.
  rule_queue          = local.wiring.ruleQueue
  rule_queue_name     = "${var.name_prefix}-${local.rule_queue.name}"
  rule_queue_function = local.rule_queue.function

  # Every function with a dead-letter queue: `rotor dlq` reads them all.
  dead_letter_functions = setunion(local.async_functions, [local.rule_queue_function])
  dead_letter_names     = { for name in local.dead_letter_functions : name => "${var.name_prefix}-${name}-dlq" }

  # domain/errors.ts ErrorName.EscalationFailed: the error an execution ends with when its
  # escalation could not be published (test/contract/terraform-drift.test.ts pins it).
  escalation_failed_error = "EscalationFailed"
}
