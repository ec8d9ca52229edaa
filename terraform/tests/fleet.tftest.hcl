# Issue 10 at the Terraform level, against the mock provider: device messages are buffered in
# the rule queue between the IoT rules and device-message (part 4), the pacing settings reach
# every function (part 1), and bad settings are refused at plan time with their own message.

mock_provider "aws" {
  source = "./tests/mocks"
}

override_resource {
  target = aws_sqs_queue.rule_queue
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:rotor-device-messages"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/rotor-device-messages"
  }
}

override_resource {
  target = aws_sns_topic.alarms
  values = {
    arn = "arn:aws:sns:eu-west-1:123456789012:rotor-alarms"
  }
}

run "rule_queue_with_defaults" {
  command = apply

  assert {
    condition = (
      aws_sqs_queue.rule_queue.name == "rotor-device-messages" && aws_sqs_queue.rule_queue.sqs_managed_sse_enabled &&
      aws_sqs_queue.rule_queue.visibility_timeout_seconds >= aws_lambda_function.function["device-message"].timeout &&
      aws_sqs_queue.rule_queue.visibility_timeout_seconds == local.wiring.ruleQueue.visibilityTimeoutSeconds &&
      aws_sqs_queue.rule_queue.message_retention_seconds == local.wiring.ruleQueue.messageRetentionSeconds
    )
    error_message = "The rule queue is NAME_PREFIX-device-messages, encrypted, with the wiring's retention and a visibility timeout no shorter than device-message's timeout."
  }

  assert {
    condition = (
      jsondecode(aws_sqs_queue.rule_queue.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dead_letter["device-message"].arn &&
      jsondecode(aws_sqs_queue.rule_queue.redrive_policy).maxReceiveCount == local.wiring.ruleQueue.maxReceiveCount &&
      jsondecode(aws_sqs_queue_redrive_allow_policy.rule_queue_dead_letter.redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.rule_queue.arn] &&
      aws_sqs_queue.dead_letter["device-message"].name == "rotor-device-message-dlq"
    )
    error_message = "After maxReceiveCount receives a device message must move to device-message's own dead-letter queue (the one rotor dlq reads), and that queue takes redriven messages from the rule queue only."
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.rule_queue.event_source_arn == aws_sqs_queue.rule_queue.arn &&
      aws_lambda_event_source_mapping.rule_queue.function_name == aws_lambda_function.function["device-message"].arn &&
      aws_lambda_event_source_mapping.rule_queue.batch_size == 10 &&
      aws_lambda_event_source_mapping.rule_queue.function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.rule_queue.scaling_config[0].maximum_concurrency == 20
    )
    error_message = "The event source mapping must hand the rule queue to device-message in batches of 10, with ReportBatchItemFailures and the wiring's maximum concurrency."
  }

  assert {
    condition = (
      aws_lambda_function.function["device-message"].reserved_concurrent_executions == 20 &&
      alltrue([for name, fn in aws_lambda_function.function : fn.reserved_concurrent_executions == -1 if name != "device-message"])
    )
    error_message = "By default device-message must have as much concurrency reserved as the mapping runs (20), and no other function any."
  }

  assert {
    condition = alltrue([
      for type, rule in aws_iot_topic_rule.device_message :
      one(rule.sqs).queue_url == aws_sqs_queue.rule_queue.url && length(rule.error_action[0].cloudwatch_logs) == 1
    ])
    error_message = "Every rule must write to the rule queue and keep its error action."
  }

  # --- least privilege ---------------------------------------------------------------------

  assert {
    condition = (
      jsondecode(aws_iam_role_policy.rule_queue.policy).Statement == [{ Sid = "SendToRuleQueue", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = [aws_sqs_queue.rule_queue.arn] }] &&
      aws_iam_role_policy.rule_queue.role == aws_iam_role.rule_queue.id &&
      jsondecode(aws_iam_role.rule_queue.assume_role_policy).Statement[0].Principal.Service == "iot.amazonaws.com"
    )
    error_message = "The rules' role may only send to the rule queue, and only IoT may assume it."
  }

  assert {
    condition = (
      aws_iam_role_policy.function_rule_queue.role == aws_iam_role.function["device-message"].id &&
      jsondecode(aws_iam_role_policy.function_rule_queue.policy).Statement == [{
        Sid      = "PollRuleQueue"
        Effect   = "Allow"
        Action   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        Resource = [aws_sqs_queue.rule_queue.arn]
      }]
    )
    error_message = "Only device-message's role may poll the rule queue, with the poller's four actions and on that queue only."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(aws_sqs_queue_policy.rule_queue.policy).Statement :
      statement.Effect == "Deny" && try(statement.Condition.Bool["aws:SecureTransport"], "") == "false"
    ])
    error_message = "The rule queue must refuse requests without TLS."
  }

  # --- alarms --------------------------------------------------------------------------------

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.dead_letters["device-message"].dimensions.QueueName == "rotor-device-message-dlq" &&
      strcontains(aws_cloudwatch_metric_alarm.dead_letters["device-message"].alarm_description, "rotor dlq replay --function device-message") &&
      aws_cloudwatch_metric_alarm.device_message_backlog.metric_name == "ApproximateAgeOfOldestMessage" &&
      aws_cloudwatch_metric_alarm.device_message_backlog.dimensions.QueueName == "rotor-device-messages" &&
      aws_cloudwatch_metric_alarm.device_message_backlog.threshold == 300 &&
      aws_cloudwatch_metric_alarm.device_message_backlog.alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:rotor-alarms"])
    )
    error_message = "The rule queue's dead letters and its backlog must each raise an alarm on the alarm topic."
  }

  # --- pacing settings (defaults) --------------------------------------------------------------

  assert {
    condition = alltrue([
      for name, fn in aws_lambda_function.function :
      fn.environment[0].variables.ROTOR_PACING_QUOTAS == "" &&
      fn.environment[0].variables.ROTOR_PACING_SAFETY_FRACTION == "0.9" &&
      fn.environment[0].variables.ROTOR_PACING_ENABLED == "true"
    ])
    error_message = "Every function must get the pacing settings; by default no quotas file (AWS's defaults), a safety fraction of 0.9, pacing on."
  }
}

run "pacing_settings_reach_every_function" {
  command = apply

  variables {
    api_quotas = {
      "iot:DescribeCertificate"      = { rate = 20, burst = 40 }
      "iot:CreateCertificateFromCsr" = { rate = 30 }
      "lambda:ConcurrentExecutions"  = { rate = 3000 }
    }
    quota_safety_fraction          = 0.75
    pacing_enabled                 = false
    device_message_max_concurrency = 50
  }

  assert {
    condition = alltrue([
      for name, fn in aws_lambda_function.function :
      jsondecode(fn.environment[0].variables.ROTOR_PACING_QUOTAS) == {
        quotas = {
          "iot:DescribeCertificate"      = { rate = 20, burst = 40 }
          "iot:CreateCertificateFromCsr" = { rate = 30 }
          "lambda:ConcurrentExecutions"  = { concurrency = 3000 }
        }
      } &&
      fn.environment[0].variables.ROTOR_PACING_SAFETY_FRACTION == "0.75" &&
      fn.environment[0].variables.ROTOR_PACING_ENABLED == "false"
    ])
    error_message = "ROTOR_PACING_QUOTAS must be the quotas file of domain/pacing/quotas.ts (a burst only where given, a concurrency for Lambda), and the fraction and switch must reach every function."
  }

  assert {
    condition     = aws_lambda_event_source_mapping.rule_queue.scaling_config[0].maximum_concurrency == 50
    error_message = "device_message_max_concurrency must set the event source mapping's maximum concurrency."
  }

  assert {
    condition     = aws_lambda_function.function["device-message"].reserved_concurrent_executions == 50
    error_message = "The default reservation must follow device_message_max_concurrency."
  }
}

run "dashboard_and_alarms_with_defaults" {
  command = apply

  assert {
    condition = (
      aws_cloudwatch_dashboard.fleet.dashboard_name == "rotor-fleet" &&
      toset([for widget in jsondecode(aws_cloudwatch_dashboard.fleet.dashboard_body).widgets : try(widget.properties.title, "") if widget.type == "metric"]) == toset([
        "Rotations started, succeeded, failed (per 5 minutes)",
        "Rotations in flight now",
        "Failures by reason (per hour)",
        "Age of the oldest in-flight rotation (seconds)",
        "Throttled calls per API (per 5 minutes)",
        "Pacing: allowed rate per bucket (calls/s) and wait per paced step (ms)",
        "Executions (Step Functions)",
        "Device messages waiting for device-message",
      ])
    )
    error_message = "The fleet dashboard must chart rotations started/succeeded/failed and in flight, failures by reason, throttled calls per API, the pacing rate, the oldest in-flight rotation and the device-message buffer."
  }

  assert {
    # Every series of a widget names the region and this deployment's state machine and queues, never another's.
    condition = alltrue([
      for widget in jsondecode(aws_cloudwatch_dashboard.fleet.dashboard_body).widgets :
      widget.properties.region == "eu-west-1" if widget.type == "metric"
    ]) && strcontains(aws_cloudwatch_dashboard.fleet.dashboard_body, "arn:aws:states:eu-west-1:123456789012:stateMachine:rotor-rotate-device") && strcontains(aws_cloudwatch_dashboard.fleet.dashboard_body, "rotor-device-messages")
    error_message = "The dashboard's widgets must chart this deployment's region, state machine and queues."
  }

  assert {
    condition = (
      aws_cloudwatch_event_rule.fleet_gauge.schedule_expression == "rate(5 minutes)" &&
      aws_cloudwatch_event_target.fleet_gauge.arn == aws_lambda_function.function["fleet-gauge"].arn &&
      aws_lambda_permission.fleet_gauge_schedule.principal == "events.amazonaws.com" &&
      aws_lambda_permission.fleet_gauge_schedule.source_arn == aws_cloudwatch_event_rule.fleet_gauge.arn &&
      aws_lambda_function.function["fleet-gauge"].environment[0].variables.STATUS_INDEX_NAME == "by-status"
    )
    error_message = "fleet-gauge must run every five minutes, invocable by its own schedule only, with the status index's name."
  }

  assert {
    # 2 × ack timeout (900) + four csr_req of 1800 s with 300 + 600 + 1200 s of backoff between.
    condition = (
      aws_cloudwatch_metric_alarm.oldest_in_flight.threshold == 11100 &&
      aws_cloudwatch_metric_alarm.oldest_in_flight.metric_name == "OldestInFlightAgeSeconds" &&
      aws_cloudwatch_metric_alarm.oldest_in_flight.dimensions.service == "fleet-gauge"
    )
    error_message = "The oldest-in-flight alarm's default must be the longest healthy wait on a device: every csr_req with its backoff plus twice the ack timeout."
  }

  assert {
    condition = (
      one([for q in aws_cloudwatch_metric_alarm.throttling_sustained.metric_query : q.expression if q.id == "throttled"]) == "SELECT SUM(ThrottledCalls) FROM SCHEMA(\"Rotor\", Api, service)" &&
      aws_cloudwatch_metric_alarm.throttling_sustained.threshold == 100 && aws_cloudwatch_metric_alarm.throttling_sustained.evaluation_periods == 3 &&
      aws_cloudwatch_metric_alarm.failure_rate.threshold == 5 &&
      toset([for q in aws_cloudwatch_metric_alarm.failure_rate.metric_query : q.id]) == toset(["rate", "failed", "succeeded"])
    )
    error_message = "Throttling must alarm when sustained over three periods, and failures as a rate of ended rotations."
  }

  assert {
    condition = alltrue([
      for alarm in [aws_cloudwatch_metric_alarm.throttling_sustained, aws_cloudwatch_metric_alarm.oldest_in_flight, aws_cloudwatch_metric_alarm.failure_rate] :
      alarm.alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:rotor-alarms"]) && startswith(alarm.alarm_name, "rotor-")
    ])
    error_message = "The fleet alarms go to the alarm topic, named so that its topic policy lets them publish."
  }
}

run "alarm_thresholds_are_settings" {
  command = plan

  variables {
    oldest_in_flight_alarm_seconds  = 86400
    throttled_calls_alarm_threshold = 20
    failure_rate_alarm_percent      = 1
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.oldest_in_flight.threshold == 86400 &&
      aws_cloudwatch_metric_alarm.throttling_sustained.threshold == 20 &&
      aws_cloudwatch_metric_alarm.failure_rate.threshold == 1
    )
    error_message = "The fleet alarms' thresholds must be the operator's settings."
  }
}

# --- bad settings --------------------------------------------------------------------------

run "rejects_unknown_quota_bucket" {
  command = plan
  variables {
    api_quotas = { "iot:DescribeThing" = { rate = 10 } }
  }
  expect_failures = [var.api_quotas]
}

run "rejects_zero_rate" {
  command = plan
  variables {
    api_quotas = { "iot:DescribeCertificate" = { rate = 0 } }
  }
  expect_failures = [var.api_quotas]
}

run "rejects_burst_below_one" {
  command = plan
  variables {
    api_quotas = { "states:StartExecution" = { rate = 300, burst = 0.5 } }
  }
  expect_failures = [var.api_quotas]
}

run "rejects_concurrency_with_burst" {
  command = plan
  variables {
    api_quotas = { "lambda:ConcurrentExecutions" = { rate = 1000, burst = 2000 } }
  }
  expect_failures = [var.api_quotas]
}

run "rejects_fractional_concurrency" {
  command = plan
  variables {
    api_quotas = { "lambda:ConcurrentExecutions" = { rate = 10.5 } }
  }
  expect_failures = [var.api_quotas]
}

run "rejects_safety_fraction_zero" {
  command = plan
  variables {
    quota_safety_fraction = 0
  }
  expect_failures = [var.quota_safety_fraction]
}

run "rejects_safety_fraction_above_one" {
  command = plan
  variables {
    quota_safety_fraction = 1.5
  }
  expect_failures = [var.quota_safety_fraction]
}

run "reserves_what_it_is_told_or_none" {
  command = plan
  variables {
    device_message_reserved_concurrency = -1
  }
  assert {
    condition     = aws_lambda_function.function["device-message"].reserved_concurrent_executions == -1
    error_message = "device_message_reserved_concurrency = -1 must reserve nothing."
  }
}

run "rejects_reservation_below_the_mapping" {
  command = plan
  variables {
    device_message_max_concurrency      = 50
    device_message_reserved_concurrency = 30
  }
  expect_failures = [aws_lambda_event_source_mapping.rule_queue]
}

run "rejects_reservation_lambda_refuses" {
  command = plan
  variables {
    device_message_reserved_concurrency = 0
  }
  expect_failures = [var.device_message_reserved_concurrency]
}

run "rejects_mapping_concurrency_sqs_refuses" {
  command = plan
  variables {
    device_message_max_concurrency = 1
  }
  expect_failures = [var.device_message_max_concurrency]
}

run "rejects_short_backlog_alarm" {
  command = plan
  variables {
    device_message_backlog_alarm_seconds = 10
  }
  expect_failures = [var.device_message_backlog_alarm_seconds]
}

run "rejects_short_oldest_in_flight_alarm" {
  command = plan
  variables {
    oldest_in_flight_alarm_seconds = 60
  }
  expect_failures = [var.oldest_in_flight_alarm_seconds]
}

run "rejects_failure_rate_above_100" {
  command = plan
  variables {
    failure_rate_alarm_percent = 150
  }
  expect_failures = [var.failure_rate_alarm_percent]
}

run "rejects_zero_throttle_threshold" {
  command = plan
  variables {
    throttled_calls_alarm_threshold = 0
  }
  expect_failures = [var.throttled_calls_alarm_threshold]
}

run "renewal_calendar_swept_every_15_minutes" {
  command = apply

  variables {
    renewal_window_days = 14
    renewal_margin_days = 5
  }

  assert {
    condition = (
      aws_cloudwatch_event_rule.calendar_sweep.schedule_expression == "rate(15 minutes)" &&
      aws_cloudwatch_event_target.calendar_sweep.arn == aws_lambda_function.function["start-rotations"].arn &&
      jsondecode(aws_cloudwatch_event_target.calendar_sweep.input) == { sweep = "calendar" } &&
      aws_lambda_permission.calendar_sweep.principal == "events.amazonaws.com" &&
      aws_lambda_permission.calendar_sweep.source_arn == aws_cloudwatch_event_rule.calendar_sweep.arn
    )
    error_message = "The calendar's sweep must invoke start-rotations with {\"sweep\":\"calendar\"} every 15 minutes (DEFAULT_RENEWAL.sweepS), allowed for EventBridge from that rule only."
  }

  assert {
    condition = (
      aws_lambda_function.function["start-rotations"].environment[0].variables.ROTOR_RENEWAL_WINDOW_DAYS == "14" &&
      aws_lambda_function.function["start-rotations"].environment[0].variables.ROTOR_RENEWAL_MARGIN_DAYS == "5" &&
      aws_lambda_function.function["start-rotations"].environment[0].variables.ROTOR_CALENDAR_ENABLED == "true" &&
      !contains(keys(aws_lambda_function.function["issue-certificate"].environment[0].variables), "ROTOR_RENEWAL_WINDOW_DAYS")
    )
    error_message = "The calendar's settings must reach start-rotations, and only it."
  }
}

run "rejects_negative_renewal_window" {
  command = plan
  variables {
    renewal_window_days = -1
  }
  expect_failures = [var.renewal_window_days]
}
