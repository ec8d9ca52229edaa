# Renders the whole module against a mock aws provider (no AWS, no network) and checks what
# it would deploy: the filled-in ASL, every IAM document, the rules, the device policy and
# that every setting's default is the wiring's.

mock_provider "aws" {
  source = "./tests/mocks"
}

override_resource {
  target = aws_sns_topic.audit
  values = {
    arn = "arn:aws:sns:eu-west-1:123456789012:rotor-audit"
  }
}

override_resource {
  target = aws_sns_topic.escalation
  values = {
    arn = "arn:aws:sns:eu-west-1:123456789012:rotor-escalations"
  }
}

run "renders_with_defaults" {
  command = apply

  # --- the state machine ---------------------------------------------------------------

  assert {
    condition     = !strcontains(aws_sfn_state_machine.state_machine["rotate-device"].definition, "$${")
    error_message = "The state machine definition still holds a $${placeholder}."
  }

  assert {
    condition     = can(jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).StartAt)
    error_message = "The state machine definition is not JSON with a StartAt."
  }

  assert {
    condition = contains(
      keys(jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States),
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).StartAt,
    )
    error_message = "StartAt does not name a state."
  }

  assert {
    # Numeric placeholders must come out as JSON numbers, string ones as strings.
    condition = (
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Request CSR"].TimeoutSeconds == 1800 &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Request CSR"].Retry[0].MaxAttempts == 3 &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Request CSR"].Retry[0].IntervalSeconds == 300 &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Deliver certificate"].TimeoutSeconds == 900
    )
    error_message = "The numeric settings did not reach the ASL as numbers."
  }

  assert {
    condition = (
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Claim device"].Parameters.TableName == "rotor-rotations" &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Escalate"].Parameters.TopicArn == "arn:aws:sns:eu-west-1:123456789012:rotor-escalations" &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Request CSR"].Parameters.FunctionName == "arn:aws:lambda:eu-west-1:123456789012:function:rotor-request-csr" &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Record failure"].Parameters.FunctionName == "arn:aws:lambda:eu-west-1:123456789012:function:rotor-record-failure"
    )
    error_message = "The ASL's table, topic or function placeholders were filled with the wrong values."
  }

  assert {
    condition     = aws_sfn_state_machine.state_machine["rotate-device"].type == "STANDARD" && aws_sfn_state_machine.state_machine["rotate-device"].name == "rotor-rotate-device"
    error_message = "The state machine must be STANDARD and named rotor-rotate-device."
  }

  assert {
    condition = (
      aws_sfn_state_machine.state_machine["rotate-device"].logging_configuration[0].level == "ALL" &&
      !aws_sfn_state_machine.state_machine["rotate-device"].logging_configuration[0].include_execution_data &&
      aws_sfn_state_machine.state_machine["rotate-device"].tracing_configuration[0].enabled
    )
    error_message = "By default the state machine must log ALL without execution data (task tokens, CSRs) and be traced."
  }

  # --- IAM -----------------------------------------------------------------------------

  assert {
    condition     = alltrue([for name, doc in local.policy_documents : can(jsondecode(doc).Statement)])
    error_message = "A policy document is not JSON with a Statement."
  }

  assert {
    condition = alltrue(flatten([
      for name, doc in local.policy_documents : [
        for statement in jsondecode(doc).Statement : [
          for action in flatten([statement.Action]) : action != "*" && !endswith(action, ":*") && strcontains(action, ":")
        ]
      ]
    ]))
    error_message = "A policy document grants a wildcard action (\"*\" or \"service:*\")."
  }

  assert {
    condition = alltrue(flatten([
      for role in concat(values(aws_iam_role.function), [aws_iam_role.state_machine["rotate-device"], aws_iam_role.rule_errors, aws_iam_role.audit_notifications], aws_iam_role.audit) : [
        for statement in jsondecode(role.assume_role_policy).Statement :
        statement.Effect == "Allow" && statement.Action == ["sts:AssumeRole"] && length(keys(statement.Principal)) == 1 && can(tostring(statement.Principal.Service))
      ]
    ]))
    error_message = "Each role must be assumable by exactly one AWS service and nothing else."
  }

  assert {
    condition = (
      jsondecode(aws_iam_role.state_machine["rotate-device"].assume_role_policy).Statement[0].Condition.ArnLike["aws:SourceArn"] == "arn:aws:states:eu-west-1:123456789012:stateMachine:rotor-rotate-device" &&
      jsondecode(aws_iam_role.rule_errors.assume_role_policy).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012"
    )
    error_message = "The state machine and rule error roles must be bound to their callers (confused deputy)."
  }

  assert {
    condition = alltrue([
      for name, spec in local.wiring.functions :
      toset(flatten([for statement in jsondecode(aws_iam_role_policy.function[name].policy).Statement : statement.Action])) == toset(keys(local.granted_permissions[name]))
    ])
    error_message = "A function's policy does not allow exactly the actions the wiring lists for it."
  }

  assert {
    condition = alltrue(flatten([
      for name, spec in local.wiring.functions : [
        for statement in jsondecode(aws_iam_role_policy.function[name].policy).Statement : [
          for action in statement.Action : spec.permissions[action] != "*" || statement.Resource == ["*"]
        ]
      ]
    ]))
    error_message = "An action with a resource kind other than '*' was granted on '*' (or the reverse)."
  }

  assert {
    condition = alltrue([
      for statement in jsondecode(aws_iam_role_policy.function["start-rotations"].policy).Statement :
      statement.Resource == ["arn:aws:states:eu-west-1:123456789012:stateMachine:rotor-rotate-device"] if contains(statement.Action, "states:StartExecution")
    ])
    error_message = "states:StartExecution must name only the rotate-device state machine."
  }

  assert {
    condition = alltrue([
      for statement in jsondecode(aws_iam_role_policy.function["start-rotations"].policy).Statement :
      statement.Resource == ["arn:aws:lambda:eu-west-1:123456789012:function:rotor-start-rotations"] if contains(statement.Action, "lambda:InvokeFunction")
    ])
    error_message = "start-rotations may invoke only itself."
  }

  assert {
    # Each function may publish only the message types it sends (wiring deviceTopics:TYPE).
    condition = alltrue([
      for name, type in {
        "request-csr"         = "csr_req"
        "deliver-certificate" = "crt_res"
        "retire-certificate"  = "crt_done"
        "roll-back"           = "abort"
        "device-message"      = "abort"
      } :
      flatten([
        for statement in jsondecode(aws_iam_role_policy.function[name].policy).Statement : statement.Resource if contains(statement.Action, "iot:Publish")
      ]) == ["arn:aws:iot:eu-west-1:123456789012:topic/management/topic/*/${type}"]
    ])
    error_message = "iot:Publish must be limited to the one message type each function sends."
  }

  assert {
    condition = alltrue([
      for name in ["start-rotations", "issue-certificate", "record-failure"] :
      !strcontains(aws_iam_role_policy.function[name].policy, "iot:Publish")
    ])
    error_message = "A function that sends no device message may not publish."
  }

  assert {
    condition = alltrue([
      for statement in jsondecode(aws_iam_role_policy.function["issue-certificate"].policy).Statement :
      toset(statement.Resource) == toset(["arn:aws:dynamodb:eu-west-1:123456789012:table/rotor-rotations", "arn:aws:dynamodb:eu-west-1:123456789012:table/rotor-rotations/index/by-status"])
      if contains(statement.Action, "dynamodb:GetItem")
    ])
    error_message = "Table actions must name the table and its by-status index, nothing else."
  }

  assert {
    condition     = toset(flatten([for statement in jsondecode(aws_iam_role_policy.state_machine["rotate-device"].policy).Statement : statement.Action])) == toset(keys(local.wiring.stateMachine.permissions))
    error_message = "The state machine's policy does not allow exactly the actions the wiring lists for it."
  }

  assert {
    condition = toset(flatten([
      for statement in jsondecode(aws_iam_role_policy.state_machine["rotate-device"].policy).Statement : statement.Resource if contains(statement.Action, "lambda:InvokeFunction")
      ])) == toset([
      for name in ["request-csr", "issue-certificate", "deliver-certificate", "retire-certificate", "roll-back", "record-failure", "release-claim"] :
      "arn:aws:lambda:eu-west-1:123456789012:function:rotor-${name}"
    ])
    error_message = "The state machine may invoke exactly the functions its states call."
  }

  # --- functions -----------------------------------------------------------------------

  assert {
    condition     = toset(keys(aws_lambda_function.function)) == toset(keys(local.wiring.functions))
    error_message = "One function per wiring entry."
  }

  assert {
    condition = alltrue([
      for name, fn in aws_lambda_function.function :
      fn.runtime == "nodejs22.x" && fn.handler == "index.handler" && tolist(fn.architectures) == tolist(["arm64"]) &&
      fn.timeout == local.wiring.functions[name].timeoutSeconds && fn.memory_size == local.wiring.functions[name].memoryMb &&
      fn.tracing_config[0].mode == "Active" && fn.function_name == "rotor-${name}"
    ])
    error_message = "A function's runtime, handler, architecture, timeout, memory, tracing or name is wrong."
  }

  assert {
    condition = alltrue([
      for name, spec in local.wiring.functions :
      length(setsubtract(keys(spec.environment), keys(aws_lambda_function.function[name].environment[0].variables))) == 0
    ])
    error_message = "A function lacks an environment variable the wiring gives it."
  }

  assert {
    condition = (
      aws_lambda_function.function["start-rotations"].environment[0].variables.STATE_MACHINE_ARN == "arn:aws:states:eu-west-1:123456789012:stateMachine:rotor-rotate-device" &&
      aws_lambda_function.function["start-rotations"].environment[0].variables.AUDIT_CHECKS == "DEVICE_CERTIFICATE_EXPIRING_CHECK,DEVICE_CERTIFICATE_AGE_CHECK" &&
      aws_lambda_function.function["request-csr"].environment[0].variables.IOT_DATA_ENDPOINT == "https://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com" &&
      aws_lambda_function.function["retire-certificate"].environment[0].variables.RETIRE_MODE == "delete" &&
      aws_lambda_function.function["retire-certificate"].environment[0].variables.HISTORY_RETENTION_DAYS == "400" &&
      aws_lambda_function.function["record-failure"].environment[0].variables.TABLE_NAME == "rotor-rotations" &&
      aws_lambda_function.function["device-message"].environment[0].variables.LOG_LEVEL == "INFO" &&
      aws_lambda_function.function["device-message"].environment[0].variables.POWERTOOLS_SERVICE_NAME == "rotor"
    )
    error_message = "A function's environment does not resolve the wiring's references."
  }

  assert {
    condition     = alltrue([for name, group in aws_cloudwatch_log_group.function : group.name == "/aws/lambda/rotor-${name}" && group.retention_in_days == 90])
    error_message = "Each function needs its /aws/lambda/NAME log group with the retention."
  }

  # --- IoT -----------------------------------------------------------------------------

  assert {
    condition     = toset(keys(aws_iot_topic_rule.device_message)) == toset([for rule in local.wiring.rules : rule.messageType])
    error_message = "One IoT rule per wiring rule."
  }

  assert {
    # domain/topics.ts ruleSqlFor(type), spelled out: this is what the functions are written against.
    condition = (
      aws_iot_topic_rule.device_message["csr_res"].sql == "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, topic() AS topic, timestamp() AS receivedAt FROM 'management/topic/+/csr_res'" &&
      aws_iot_topic_rule.device_message["crt_ack"].sql == "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, topic() AS topic, timestamp() AS receivedAt FROM 'management/topic/+/crt_ack'" &&
      aws_iot_topic_rule.device_message["crt_err"].sql == "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, topic() AS topic, timestamp() AS receivedAt FROM 'management/topic/+/crt_err'"
    )
    error_message = "A rule's SQL differs from domain/topics.ts ruleSqlFor()."
  }

  assert {
    condition = alltrue([
      for type, rule in aws_iot_topic_rule.device_message :
      rule.name == "rotor_${type}" && rule.sql_version == "2016-03-23" && rule.enabled &&
      length(rule.error_action[0].cloudwatch_logs) == 1 &&
      length(rule.lambda) == 0 &&
      one(rule.sqs).queue_url == aws_sqs_queue.rule_queue.url && one(rule.sqs).role_arn == aws_iam_role.rule_queue.arn && one(rule.sqs).use_base64 == false
    ])
    error_message = "A rule's name, SQL version, SQS action (the rule queue, its role, no base64) or error action is wrong."
  }

  assert {
    condition = alltrue(flatten([
      for statement in jsondecode(aws_iot_policy.device.policy).Statement : [
        for resource in statement.Resource :
        statement.Action == ["iot:Connect"]
        ? resource == "arn:aws:iot:eu-west-1:123456789012:client/$${iot:Connection.Thing.ThingName}"
        : startswith(resource, "arn:aws:iot:eu-west-1:123456789012:topic/management/topic/$${iot:Connection.Thing.ThingName}/") || startswith(resource, "arn:aws:iot:eu-west-1:123456789012:topicfilter/management/topic/$${iot:Connection.Thing.ThingName}/")
      ]
    ]))
    error_message = "The device policy reaches beyond the device's own client id and management/topic/{thing}/ topics."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(aws_iot_policy.device.policy).Statement :
      statement.Action == ["iot:Connect"] && try(statement.Condition.Bool["iot:Connection.Thing.IsAttached"], "") == "true"
    ])
    error_message = "The device policy must require the certificate to be attached to the thing it connects as."
  }

  assert {
    condition     = output.device_policy_document == aws_iot_policy.device.policy && output.device_policy_name == "rotor-device-rotation"
    error_message = "The device policy outputs must match the deployed policy."
  }

  # --- table, topics, subscriptions ----------------------------------------------------

  assert {
    condition = (
      aws_dynamodb_table.rotations.billing_mode == "PAY_PER_REQUEST" &&
      aws_dynamodb_table.rotations.hash_key == "pk" && aws_dynamodb_table.rotations.range_key == "sk" &&
      one(aws_dynamodb_table.rotations.global_secondary_index).name == "by-status" &&
      one(aws_dynamodb_table.rotations.global_secondary_index).hash_key == "status" &&
      one(aws_dynamodb_table.rotations.global_secondary_index).range_key == "updatedAt" &&
      aws_dynamodb_table.rotations.ttl[0].attribute_name == "expiresAt" &&
      aws_dynamodb_table.rotations.point_in_time_recovery[0].enabled &&
      aws_dynamodb_table.rotations.server_side_encryption[0].enabled &&
      aws_dynamodb_table.rotations.deletion_protection_enabled
    )
    error_message = "The table does not match the wiring's keys, index and TTL, or lacks PITR, encryption or deletion protection."
  }

  assert {
    condition     = aws_sns_topic.audit.kms_master_key_id == "alias/aws/sns" && aws_sns_topic.escalation.kms_master_key_id == "alias/aws/sns"
    error_message = "Both topics must be encrypted."
  }

  assert {
    condition = (
      aws_sns_topic_subscription.function["audit-start-rotations"].protocol == "lambda" &&
      aws_sns_topic_subscription.function["audit-start-rotations"].topic_arn == "arn:aws:sns:eu-west-1:123456789012:rotor-audit" &&
      aws_lambda_permission.sns["audit-start-rotations"].principal == "sns.amazonaws.com" &&
      aws_lambda_permission.sns["audit-start-rotations"].source_arn == "arn:aws:sns:eu-west-1:123456789012:rotor-audit" &&
      length(aws_sns_topic_subscription.escalation_email) == 0
    )
    error_message = "The audit topic must invoke start-rotations (subscription + permission), and no e-mail is subscribed by default."
  }

  # --- Device Defender -----------------------------------------------------------------

  assert {
    condition = (
      jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.AuditConfiguration.Properties.AuditCheckConfigurations == {
        DeviceCertificateExpiringCheck = { Enabled = true }
        DeviceCertificateAgeCheck      = { Enabled = true, Configuration = { CertAgeThresholdInDays = "365" } }
        CaCertificateExpiringCheck     = { Enabled = true }
      }
    )
    error_message = "The audit configuration must enable both certificate checks, the age check with its threshold."
  }

  assert {
    condition = (
      jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.AuditConfiguration.Properties.AuditNotificationTargetConfigurations.Sns.TargetArn == "arn:aws:sns:eu-west-1:123456789012:rotor-audit" &&
      jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.AuditConfiguration.Properties.AccountId == "123456789012"
    )
    error_message = "Audit notifications must go to the audit topic of this account."
  }

  assert {
    condition = (
      jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.ScheduledAudit.Properties == {
        ScheduledAuditName = "rotor-certificate-audit"
        Frequency          = "DAILY"
        TargetCheckNames   = ["DEVICE_CERTIFICATE_EXPIRING_CHECK", "DEVICE_CERTIFICATE_AGE_CHECK", "CA_CERTIFICATE_EXPIRING_CHECK"]
      }
    )
    error_message = "A DAILY scheduled audit takes no day and targets the configured checks."
  }

  # --- defaults come from the wiring ---------------------------------------------------

  assert {
    condition     = toset(keys(local.settings)) == toset(keys(local.wiring.settings))
    error_message = "Every wiring setting needs a variable (locals.tf settings), and only those."
  }

  assert {
    condition     = alltrue([for name, spec in local.wiring.settings : tostring(local.settings[name]) == tostring(spec.default)])
    error_message = "A variable's default differs from the wiring's default for its setting."
  }
}

run "renders_tuned_settings" {
  command = apply

  variables {
    name_prefix               = "fleet-a"
    csr_timeout_seconds       = 600
    csr_request_retries       = 5
    ack_timeout_seconds       = 120
    retire_mode               = "keep-inactive"
    audit_checks              = ["DEVICE_CERTIFICATE_AGE_CHECK"]
    cert_age_threshold_days   = 180
    audit_frequency           = "MONTHLY"
    audit_day_of_month        = 15
    sfn_log_level             = "ERROR"
    escalation_emails         = ["ops@example.com", "pki@example.com"]
    sns_kms_key_arn           = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    table_deletion_protection = false
    tags                      = { team = "platform" }
  }

  assert {
    condition = (
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Request CSR"].TimeoutSeconds == 600 &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Request CSR"].Retry[0].MaxAttempts == 5 &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Deliver certificate"].TimeoutSeconds == 120 &&
      jsondecode(aws_sfn_state_machine.state_machine["rotate-device"].definition).States["Request CSR"].Parameters.FunctionName == "arn:aws:lambda:eu-west-1:123456789012:function:fleet-a-request-csr"
    )
    error_message = "Tuned settings or the name prefix did not reach the ASL."
  }

  assert {
    condition = (
      aws_lambda_function.function["retire-certificate"].environment[0].variables.RETIRE_MODE == "keep-inactive" &&
      aws_lambda_function.function["start-rotations"].environment[0].variables.AUDIT_CHECKS == "DEVICE_CERTIFICATE_AGE_CHECK" &&
      aws_lambda_function.function["start-rotations"].function_name == "fleet-a-start-rotations"
    )
    error_message = "Tuned settings did not reach the functions' environment."
  }

  assert {
    condition     = aws_iot_topic_rule.device_message["crt_ack"].name == "fleet_a_crt_ack"
    error_message = "Rule names must replace characters IoT does not allow."
  }

  assert {
    condition = (
      jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.ScheduledAudit.Properties.DayOfMonth == "15" &&
      !can(jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.ScheduledAudit.Properties.DayOfWeek) &&
      keys(jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.AuditConfiguration.Properties.AuditCheckConfigurations) == ["CaCertificateExpiringCheck", "DeviceCertificateAgeCheck"] &&
      jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.AuditConfiguration.Properties.AuditCheckConfigurations.DeviceCertificateAgeCheck.Configuration.CertAgeThresholdInDays == "180"
    )
    error_message = "A MONTHLY audit of the age check alone was not rendered as asked."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.escalation_email) == 2 && alltrue([for s in aws_sns_topic_subscription.escalation_email : s.protocol == "email" && s.topic_arn == aws_sns_topic.escalation.arn])
    error_message = "Each escalation address needs an e-mail subscription to the escalation topic."
  }

  assert {
    condition = (
      aws_sns_topic.audit.kms_master_key_id == var.sns_kms_key_arn &&
      anytrue([for s in jsondecode(aws_iam_role_policy.state_machine_observability["rotate-device"].policy).Statement : contains(s.Resource, var.sns_kms_key_arn)]) &&
      anytrue([for s in jsondecode(aws_iam_role_policy.audit_notifications.policy).Statement : contains(s.Resource, var.sns_kms_key_arn)])
    )
    error_message = "A customer managed key must encrypt the topics and be usable by their publishers."
  }

  assert {
    condition     = !aws_dynamodb_table.rotations.deletion_protection_enabled && aws_sfn_state_machine.state_machine["rotate-device"].logging_configuration[0].level == "ERROR"
    error_message = "table_deletion_protection and sfn_log_level must reach their resources."
  }

  assert {
    condition     = aws_lambda_function.function["roll-back"].tags["team"] == "platform" && aws_dynamodb_table.rotations.tags["team"] == "platform"
    error_message = "The caller's tags must be on the resources."
  }
}

run "audit_configuration_managed_elsewhere" {
  command = plan

  variables {
    manage_audit_configuration = false
    audit_frequency            = "WEEKLY"
  }

  assert {
    condition     = length(aws_cloudformation_stack.device_defender) == 0 && length(aws_iam_role.audit) == 0
    error_message = "With manage_audit_configuration = false, nothing may touch the account's audit configuration."
  }

  assert {
    condition     = length(aws_iam_role.audit_notifications.name) > 0
    error_message = "The notification role stays, for an audit configuration managed elsewhere."
  }
}
