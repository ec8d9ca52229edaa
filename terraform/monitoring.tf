# Alarms for what would otherwise fail silently: an event Lambda gave up on (a device message
# or an audit page in a dead-letter queue), and a failed rotation whose escalation could not be
# published (the execution ends with EscalationFailed).
#
# They go to their own topic, never to the escalation topic: an alarm about escalations that
# cannot be published must not depend on publishing to that topic, and CloudWatch alarms cannot
# publish to a topic encrypted with the AWS managed key alias/aws/sns at all (its key policy
# does not let cloudwatch.amazonaws.com use it). So the alarm topic has a key of its own whose
# policy lets CloudWatch and EventBridge encrypt, and nothing else.

resource "aws_kms_key" "alarms" {
  description             = "Rotor ${var.name_prefix}: encrypts the alarm topic; CloudWatch and EventBridge may use it to publish."
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = local.alarm_key_policy
  tags                    = local.tags
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${var.name_prefix}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
  tags              = local.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = local.alarm_topic_policy
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  alarm_arn_prefix = "${local.arn_prefix}:cloudwatch:${local.region}:${local.account}:alarm:${var.name_prefix}-"

  # The key policy: the account administers it through IAM (the default key policy statement);
  # CloudWatch and EventBridge may use it to publish (the topic policy below says which alarms
  # and which rule may publish at all).
  alarm_key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "${local.arn_prefix}:iam::${local.account}:root" }
        Action    = ["kms:*"]
        Resource  = ["*"]
      },
      {
        Sid       = "AlarmsAndRulesPublish"
        Effect    = "Allow"
        Principal = { Service = ["cloudwatch.amazonaws.com", "events.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = ["*"]
      },
    ]
  })

  alarm_topic_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["sns:Publish"]
        Resource  = [aws_sns_topic.alarms.arn]
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account }
          ArnLike      = { "aws:SourceArn" = "${local.alarm_arn_prefix}*" }
        }
      },
      {
        Sid       = "EscalationFailedRulePublishes"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = ["sns:Publish"]
        Resource  = [aws_sns_topic.alarms.arn]
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account }
          ArnEquals    = { "aws:SourceArn" = aws_cloudwatch_event_rule.escalation_failed.arn }
        }
      },
      merge(local.topic_deny_insecure_transport_statement, { Resource = [aws_sns_topic.alarms.arn] }),
    ]
  })
}

# --- dead letters (issue 9, scenario 8) ----------------------------------------------------

# SQS publishes queue metrics every five minutes; one visible message is already a device
# message or an audit page nobody handled. docs/operations.md says how to read and replay it.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = local.dead_letter_functions

  alarm_name = "${var.name_prefix}-${each.key}-dead-letters"
  alarm_description = (each.key == local.rule_queue_function
    ? "The rule queue ${local.rule_queue_name} gave up on a device message after ${local.rule_queue.maxReceiveCount} receives by ${local.function_names[each.key]} and moved it to ${local.dead_letter_names[each.key]}. See it: rotor dlq list --function ${each.key}; replay it once the cause is fixed: rotor dlq replay --function ${each.key}."
    : "Lambda gave up on an asynchronous event of ${local.function_names[each.key]} and put it in ${local.dead_letter_names[each.key]}. See it: rotor dlq list --function ${each.key}; replay it once the cause is fixed: rotor dlq replay --function ${each.key}."
  )
  namespace   = "AWS/SQS"
  metric_name = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.dead_letter[each.key].name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  # No data means an empty, idle queue.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.alarms.arn]
  ok_actions         = [aws_sns_topic.alarms.arn]
  tags               = local.tags
}

# --- escalations that could not be sent (issue 9, scenario 5) ------------------------------

# Step Functions' ExecutionsFailed metric counts every failed rotation (each one already
# escalated), so it cannot tell this one apart. The execution status change event carries the
# execution's error name: a rule matches FAILED executions of this state machine whose error is
# EscalationFailed, notifies the alarm topic with the execution, and its TriggeredRules metric
# drives the alarm.
resource "aws_cloudwatch_event_rule" "escalation_failed" {
  name        = "${var.name_prefix}-escalation-failed"
  description = "A rotation failed and its escalation could not be published (error ${local.escalation_failed_error})."
  event_pattern = jsonencode({
    source        = ["aws.states"]
    "detail-type" = ["Step Functions Execution Status Change"]
    detail = {
      stateMachineArn = [local.state_machine_arn]
      status          = ["FAILED"]
      error           = [local.escalation_failed_error]
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "escalation_failed" {
  rule      = aws_cloudwatch_event_rule.escalation_failed.name
  target_id = "alarm-topic"
  arn       = aws_sns_topic.alarms.arn

  input_transformer {
    input_paths = {
      execution = "$.detail.executionArn"
      name      = "$.detail.name"
    }
    input_template = "\"Rotor: rotation <name> failed and its escalation could not be published (${local.escalation_failed_error}). Nobody else has been told. Execution: <execution>. See rotor trace --execution <execution>.\""
  }
}

resource "aws_cloudwatch_metric_alarm" "escalation_failed" {
  alarm_name        = "${var.name_prefix}-escalation-failed"
  alarm_description = "At least one rotation ended in ${local.escalation_failed_error}: it failed and nobody was told on the escalation topic. rotor status --status FAILED lists it; check the escalation topic's KMS key and policy."
  namespace         = "AWS/Events"
  metric_name       = "TriggeredRules"
  dimensions = {
    RuleName = aws_cloudwatch_event_rule.escalation_failed.name
  }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# --- the rule queue's backlog (issue 10 part 4) ------------------------------------------------

variable "device_message_backlog_alarm_seconds" {
  description = "Alarm when the oldest device message in the rule queue has waited this long: device-message is not keeping up (concurrency, throttling) or failing."
  type        = number
  default     = 300

  validation {
    condition     = var.device_message_backlog_alarm_seconds >= 60 && floor(var.device_message_backlog_alarm_seconds) == var.device_message_backlog_alarm_seconds
    error_message = "device_message_backlog_alarm_seconds must be a whole number of at least 60."
  }
}

# A device waits for its answer while its message waits here: a backlog that keeps growing
# older ends in CSR and ack timeouts. Three five-minute periods, so a burst that drains is quiet.
resource "aws_cloudwatch_metric_alarm" "device_message_backlog" {
  alarm_name        = "${var.name_prefix}-device-message-backlog"
  alarm_description = "Device messages have waited more than ${var.device_message_backlog_alarm_seconds} s in ${local.rule_queue_name}: ${local.function_names[local.rule_queue_function]} is not keeping up (its concurrency, device_message_max_concurrency, or throttling) or failing. See the fleet dashboard and the function's log."
  namespace         = "AWS/SQS"
  metric_name       = "ApproximateAgeOfOldestMessage"
  dimensions = {
    QueueName = aws_sqs_queue.rule_queue.name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.device_message_backlog_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}
