# The operations half of issue 9, rendered against the mock provider: asynchronous invocations
# end in dead-letter queues with alarms, an escalation that could not be published raises an
# alarm on a topic of its own, the state machine logs no execution data unless asked, and only
# Device Defender may publish audit notifications.

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

override_resource {
  target = aws_sns_topic.alarms
  values = {
    arn = "arn:aws:sns:eu-west-1:123456789012:rotor-alarms"
  }
}

override_resource {
  target = aws_iam_role.audit_notifications
  values = {
    arn = "arn:aws:iam::123456789012:role/rotor-audit-notifications"
  }
}

run "dead_letters_and_alarms_with_defaults" {
  command = apply

  # --- asynchronous invocations and the rule queue end in a dead-letter queue (scenario 8) ---

  assert {
    condition     = toset(keys(aws_lambda_function_event_invoke_config.async)) == toset(["start-rotations"]) && toset(keys(aws_sqs_queue.dead_letter)) == toset(["device-message", "start-rotations"])
    error_message = "The functions the audit subscription invokes (and only they) need an event invoke config; they and the rule queue's function need a dead-letter queue."
  }

  assert {
    condition = alltrue([
      for name, config in aws_lambda_function_event_invoke_config.async :
      config.function_name == "rotor-${name}" &&
      config.maximum_retry_attempts == 2 && config.maximum_event_age_in_seconds == 3600 &&
      config.destination_config[0].on_failure[0].destination == aws_sqs_queue.dead_letter[name].arn
    ])
    error_message = "Each asynchronous function must retry twice within an hour, then send to its own dead-letter queue."
  }

  assert {
    condition = (
      var.async_maximum_retry_attempts == local.wiring.asyncInvocations.maximumRetryAttempts &&
      var.async_maximum_event_age_seconds == local.wiring.asyncInvocations.maximumEventAgeSeconds
    )
    error_message = "The asynchronous invocation defaults must be the wiring's (the local runtime uses those)."
  }

  assert {
    condition = alltrue([
      for name, queue in aws_sqs_queue.dead_letter :
      queue.name == "rotor-${name}-dlq" && queue.sqs_managed_sse_enabled && queue.message_retention_seconds == 1209600
    ])
    error_message = "Each dead-letter queue is named NAME_PREFIX-FUNCTION-dlq (what rotor dlq looks for), encrypted, and keeps messages 14 days."
  }

  assert {
    condition = alltrue([
      for name, policy in aws_iam_role_policy.function_dead_letter :
      policy.role == aws_iam_role.function[name].id &&
      jsondecode(policy.policy).Statement == [{ Sid = "OwnDeadLetterQueue", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = [aws_sqs_queue.dead_letter[name].arn] }]
    ])
    error_message = "Each asynchronous function's role may send to its own dead-letter queue only (Lambda uses it for the destination)."
  }

  assert {
    condition = alltrue([
      for name, policy in aws_sqs_queue_policy.dead_letter :
      anytrue([for statement in jsondecode(policy.policy).Statement : statement.Effect == "Deny" && try(statement.Condition.Bool["aws:SecureTransport"], "") == "false"])
    ])
    error_message = "The dead-letter queues must refuse requests without TLS."
  }

  assert {
    condition = alltrue([
      for name, alarm in aws_cloudwatch_metric_alarm.dead_letters :
      alarm.namespace == "AWS/SQS" && alarm.metric_name == "ApproximateNumberOfMessagesVisible" &&
      alarm.dimensions.QueueName == aws_sqs_queue.dead_letter[name].name &&
      alarm.comparison_operator == "GreaterThanThreshold" && alarm.threshold == 0 &&
      alarm.treat_missing_data == "notBreaching" &&
      alarm.alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:rotor-alarms"])
    ])
    error_message = "Each dead-letter queue needs an alarm on one visible message, to the alarm topic."
  }

  # --- an escalation that could not be published (scenario 5) ---------------------------

  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.escalation_failed.event_pattern) == {
      source        = ["aws.states"]
      "detail-type" = ["Step Functions Execution Status Change"]
      detail = {
        stateMachineArn = ["arn:aws:states:eu-west-1:123456789012:stateMachine:rotor-rotate-device"]
        status          = ["FAILED"]
        error           = ["EscalationFailed"]
      }
    }
    error_message = "The rule must match FAILED executions of the rotate-device state machine whose error is EscalationFailed, and nothing else."
  }

  assert {
    condition = (
      aws_cloudwatch_event_target.escalation_failed.arn == "arn:aws:sns:eu-west-1:123456789012:rotor-alarms" &&
      aws_cloudwatch_event_target.escalation_failed.rule == aws_cloudwatch_event_rule.escalation_failed.name &&
      aws_cloudwatch_metric_alarm.escalation_failed.namespace == "AWS/Events" &&
      aws_cloudwatch_metric_alarm.escalation_failed.metric_name == "TriggeredRules" &&
      aws_cloudwatch_metric_alarm.escalation_failed.dimensions.RuleName == aws_cloudwatch_event_rule.escalation_failed.name &&
      aws_cloudwatch_metric_alarm.escalation_failed.threshold == 1 &&
      aws_cloudwatch_metric_alarm.escalation_failed.comparison_operator == "GreaterThanOrEqualToThreshold" &&
      aws_cloudwatch_metric_alarm.escalation_failed.alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:rotor-alarms"])
    )
    error_message = "The EscalationFailed rule must notify the alarm topic, and its TriggeredRules metric must drive an alarm to the alarm topic."
  }

  assert {
    condition = alltrue([
      for action in concat(tolist(aws_cloudwatch_metric_alarm.escalation_failed.alarm_actions), flatten([for alarm in aws_cloudwatch_metric_alarm.dead_letters : tolist(alarm.alarm_actions)]), [aws_cloudwatch_event_target.escalation_failed.arn]) :
      action != aws_sns_topic.escalation.arn
    ])
    error_message = "No alarm may depend on the escalation topic: an alarm about escalations that cannot be published must reach people another way."
  }

  assert {
    condition = (
      aws_sns_topic.alarms.kms_master_key_id == aws_kms_key.alarms.arn && aws_kms_key.alarms.enable_key_rotation &&
      anytrue([
        for statement in jsondecode(aws_kms_key.alarms.policy).Statement :
        statement.Effect == "Allow" && toset(try(statement.Principal.Service, [])) == toset(["cloudwatch.amazonaws.com", "events.amazonaws.com"]) &&
        toset(statement.Action) == toset(["kms:Decrypt", "kms:GenerateDataKey*"])
      ])
    )
    error_message = "The alarm topic must be encrypted with its own rotating key that CloudWatch and EventBridge can use (alias/aws/sns refuses them)."
  }

  assert {
    condition = (
      anytrue([
        for statement in jsondecode(aws_sns_topic_policy.alarms.policy).Statement :
        statement.Effect == "Allow" && try(statement.Principal.Service, "") == "cloudwatch.amazonaws.com" &&
        try(statement.Condition.StringEquals["aws:SourceAccount"], "") == "123456789012" &&
        try(statement.Condition.ArnLike["aws:SourceArn"], "") == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:rotor-*"
      ]) &&
      anytrue([
        for statement in jsondecode(aws_sns_topic_policy.alarms.policy).Statement :
        statement.Effect == "Allow" && try(statement.Principal.Service, "") == "events.amazonaws.com" &&
        try(statement.Condition.ArnEquals["aws:SourceArn"], "") == aws_cloudwatch_event_rule.escalation_failed.arn
      ])
    )
    error_message = "Only this module's alarms and its EscalationFailed rule may publish to the alarm topic."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.alarm_email) == 0 && output.alarm_topic_arn == "arn:aws:sns:eu-west-1:123456789012:rotor-alarms"
    error_message = "No e-mail is subscribed to the alarm topic by default; its ARN is an output."
  }

  assert {
    condition     = toset(keys(output.dead_letter_queue_urls)) == toset(["device-message", "start-rotations"])
    error_message = "The dead-letter queue URLs must be outputs."
  }

  # --- secrets and blast radius (scenario 9) --------------------------------------------

  assert {
    condition     = !aws_sfn_state_machine.state_machine["rotate-device"].logging_configuration[0].include_execution_data
    error_message = "The state machine must not log execution data (task tokens, CSRs) by default."
  }

  assert {
    condition = (
      one(aws_dynamodb_table.rotations.global_secondary_index).projection_type == "INCLUDE" &&
      !contains(one(aws_dynamodb_table.rotations.global_secondary_index).non_key_attributes, "taskToken") &&
      toset(one(aws_dynamodb_table.rotations.global_secondary_index).non_key_attributes) == toset(local.wiring.table.statusIndex.nonKeyAttributes)
    )
    error_message = "The by-status index must project the wiring's list of attributes, never taskToken."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(aws_sns_topic_policy.audit.policy).Statement :
      statement.Effect == "Allow" && try(statement.Principal.AWS, "") == "arn:aws:iam::123456789012:role/rotor-audit-notifications" && statement.Action == ["sns:Publish"]
    ])
    error_message = "Device Defender's notification role must be allowed to publish audit notifications."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(aws_sns_topic_policy.audit.policy).Statement :
      statement.Effect == "Deny" && try(statement.Principal.AWS, "") == "*" && statement.Action == ["sns:Publish"] &&
      try(statement.Condition.StringNotEquals["aws:PrincipalArn"], "") == "arn:aws:iam::123456789012:role/rotor-audit-notifications"
    ])
    error_message = "Every principal but Device Defender's notification role must be denied publishing to the audit topic (an IAM Allow elsewhere in the account must not be enough)."
  }
}

run "operator_tunes_logging_and_async" {
  command = apply

  variables {
    sfn_log_include_execution_data  = true
    sfn_log_level                   = "ERROR"
    async_maximum_retry_attempts    = 0
    async_maximum_event_age_seconds = 900
    alarm_emails                    = ["oncall@example.com"]
  }

  assert {
    condition = (
      aws_sfn_state_machine.state_machine["rotate-device"].logging_configuration[0].include_execution_data &&
      aws_sfn_state_machine.state_machine["rotate-device"].logging_configuration[0].level == "ERROR"
    )
    error_message = "sfn_log_include_execution_data and sfn_log_level must reach the state machine."
  }

  assert {
    condition = alltrue([
      for name, config in aws_lambda_function_event_invoke_config.async :
      config.maximum_retry_attempts == 0 && config.maximum_event_age_in_seconds == 900
    ])
    error_message = "The asynchronous invocation settings must reach every event invoke config."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.alarm_email) == 1 && aws_sns_topic_subscription.alarm_email["oncall@example.com"].topic_arn == "arn:aws:sns:eu-west-1:123456789012:rotor-alarms"
    error_message = "alarm_emails must be subscribed to the alarm topic."
  }
}

run "rejects_async_retries_lambda_refuses" {
  command = plan

  variables {
    async_maximum_retry_attempts = 3
  }

  expect_failures = [var.async_maximum_retry_attempts]
}

run "rejects_async_event_age_lambda_refuses" {
  command = plan

  variables {
    async_maximum_event_age_seconds = 30
  }

  expect_failures = [var.async_maximum_event_age_seconds]
}

run "rejects_bad_alarm_email" {
  command = plan

  variables {
    alarm_emails = ["not-an-address"]
  }

  expect_failures = [var.alarm_emails]
}
