# The fleet dashboard and its alarms (issue 10 part 8): what an operator of a large rotation
# watches. Rotations started, succeeded, failed and in flight; failures by reason; throttled
# calls per API; the pacing rate; the age of the oldest in-flight rotation; the device-message
# buffer. The Rotor/* metrics are the functions' EMF metrics (functions/core/telemetry.ts
# MetricName; test/contract/dashboard.test.ts holds every name charted here to the code that
# emits it); AWS/States and AWS/SQS are the services' own.

variable "oldest_in_flight_alarm_seconds" {
  description = "Alarm when the oldest in-flight rotation started longer ago than this. Null means the longest a healthy rotation waits on its device: every csr_req with its backoff, plus twice the ack timeout."
  type        = number
  default     = null

  validation {
    condition     = var.oldest_in_flight_alarm_seconds == null || try(var.oldest_in_flight_alarm_seconds >= 300 && floor(var.oldest_in_flight_alarm_seconds) == var.oldest_in_flight_alarm_seconds, false)
    error_message = "oldest_in_flight_alarm_seconds must be a whole number of at least 300, or null."
  }
}

variable "throttled_calls_alarm_threshold" {
  description = "Alarm when the functions see more than this many throttled AWS calls in each of three five-minute periods in a row. Pacing probes its rate (AIMD), so a few are expected; a sustained stream means the quotas it paces against are too high (api_quotas) or another workload takes the rest."
  type        = number
  default     = 100

  validation {
    condition     = var.throttled_calls_alarm_threshold >= 1 && floor(var.throttled_calls_alarm_threshold) == var.throttled_calls_alarm_threshold
    error_message = "throttled_calls_alarm_threshold must be a whole number of at least 1."
  }
}

variable "failure_rate_alarm_percent" {
  description = "Alarm when more than this share (percent) of the rotations that ended in an hour failed, once at least 10 ended."
  type        = number
  default     = 5

  validation {
    condition     = var.failure_rate_alarm_percent > 0 && var.failure_rate_alarm_percent <= 100
    error_message = "failure_rate_alarm_percent must be above 0 and at most 100."
  }
}

locals {
  # A rotation waits on its device for at most: csr_req sent 1 + retries times, each waiting
  # csr_timeout, with the backoff pauses between (interval, doubling), then the ack twice over.
  csr_wait_seconds = (
    var.csr_timeout_seconds * (var.csr_request_retries + 1) +
    var.csr_retry_interval_seconds * (pow(2, var.csr_request_retries) - 1)
  )
  oldest_in_flight_alarm_seconds = coalesce(var.oldest_in_flight_alarm_seconds, 2 * var.ack_timeout_seconds + local.csr_wait_seconds)

  dashboard_name = "${var.name_prefix}-fleet"
  # The Rotor metrics' namespace (functions/core/telemetry.ts METRICS_NAMESPACE).
  metrics_namespace = "Rotor"
  fleet_gauge       = "fleet-gauge"

  # SEARCH finds every series of a metric whatever emitted it (the dimension `service` is the
  # function's name), so a chart does not list functions by hand.
  search = {
    rotations_started   = "SUM(SEARCH('{${local.metrics_namespace},service} MetricName=\"RotationsStarted\"', 'Sum', 300))"
    rotations_succeeded = "SUM(SEARCH('{${local.metrics_namespace},service} MetricName=\"RotationsSucceeded\"', 'Sum', 300))"
    rotations_failed    = "SUM(SEARCH('{${local.metrics_namespace},reason,service} MetricName=\"RotationsFailed\"', 'Sum', 300))"
    failed_by_reason    = "SEARCH('{${local.metrics_namespace},reason,service} MetricName=\"RotationsFailed\"', 'Sum', 3600)"
    throttled_by_api    = "SEARCH('{${local.metrics_namespace},Api,service} MetricName=\"ThrottledCalls\"', 'Sum', 300)"
    pacing_rate         = "SEARCH('{${local.metrics_namespace},Bucket,service} MetricName=\"PacingRate\"', 'Average', 300)"
    pacing_wait         = "SEARCH('{${local.metrics_namespace},service} MetricName=\"PacingWaitMs\"', 'Average', 300)"
  }

  state_machine_metric = { for name in ["ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionThrottled"] : name => ["AWS/States", name, "StateMachineArn", local.state_machine_arn] }

  # The charts, two to a row under the title, in this order. Each is a metric widget with these
  # properties over the defaults below; `alarm` draws that alarm's threshold as a line.
  charts = [
    {
      title = "Rotations started, succeeded, failed (per 5 minutes)"
      stat  = "Sum"
      metrics = [
        [{ expression = local.search.rotations_started, id = "started", label = "RotationsStarted" }],
        [{ expression = local.search.rotations_succeeded, id = "succeeded", label = "RotationsSucceeded" }],
        [{ expression = local.search.rotations_failed, id = "failed", label = "RotationsFailed" }],
      ]
    },
    {
      title = "Rotations in flight now"
      stat  = "Maximum"
      metrics = [
        [local.metrics_namespace, "RotationsInFlight", "service", local.fleet_gauge, { label = "RotationsInFlight (IN_PROGRESS records)" }],
      ]
    },
    {
      title   = "Failures by reason (per hour)"
      period  = 3600
      view    = "bar"
      metrics = [[{ expression = local.search.failed_by_reason, id = "byReason", label = "" }]]
    },
    {
      title = "Age of the oldest in-flight rotation (seconds)"
      stat  = "Maximum"
      metrics = [
        [local.metrics_namespace, "OldestInFlightAgeSeconds", "service", local.fleet_gauge, { label = "OldestInFlightAgeSeconds" }],
      ]
      alarm = local.oldest_in_flight_alarm_seconds
    },
    {
      title = "Throttled calls per API (per 5 minutes)"
      metrics = [
        [{ expression = local.search.throttled_by_api, id = "throttled", label = "" }],
        concat(local.state_machine_metric["ExecutionThrottled"], [{ stat = "Sum", label = "Step Functions ExecutionThrottled" }]),
      ]
      alarm = var.throttled_calls_alarm_threshold
    },
    {
      title = "Pacing: allowed rate per bucket (calls/s) and wait per paced step (ms)"
      metrics = [
        [{ expression = local.search.pacing_rate, id = "rate", label = "" }],
        [{ expression = local.search.pacing_wait, id = "wait", label = "PacingWaitMs", yAxis = "right" }],
      ]
    },
    {
      title   = "Executions (Step Functions)"
      stat    = "Sum"
      metrics = [for name in ["ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed"] : concat(local.state_machine_metric[name], [{ label = name }])]
    },
    {
      title = "Device messages waiting for device-message"
      stat  = "Maximum"
      metrics = concat(
        [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.rule_queue_name, { label = "queued" }],
          ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", local.rule_queue_name, { label = "oldest (s)", yAxis = "right" }],
        ],
        [for name in sort(tolist(local.dead_letter_functions)) : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.dead_letter_names[name], { label = "dead letters: ${name}" }]],
      )
    },
  ]
  chart_rows = ceil(length(local.charts) / 2)

  dashboard_widgets = concat(
    [
      {
        type = "text", x = 0, y = 0, width = 24, height = 2
        properties = {
          markdown = "## Rotor fleet — ${var.name_prefix}\nRotations of the audit's devices, paced against the account's quotas. How to read it: docs/operations.md \"The fleet dashboard\". Dead letters: `rotor dlq list`; one device: `rotor status --thing NAME`."
        }
      },
    ],
    [
      for i, chart in local.charts : {
        type = "metric", x = 12 * (i % 2), y = 2 + 6 * floor(i / 2), width = 12, height = 6
        properties = merge(
          { region = local.region, period = 300, view = "timeSeries" },
          { for key, value in chart : key => value if key != "alarm" },
          try({ annotations = { horizontal = [{ label = "alarm", value = chart.alarm }] } }, {}),
        )
      }
    ],
    [
      {
        type = "alarm", x = 0, y = 2 + 6 * local.chart_rows, width = 24, height = 3
        properties = {
          title = "Alarms"
          alarms = concat(
            [
              aws_cloudwatch_metric_alarm.throttling_sustained.arn,
              aws_cloudwatch_metric_alarm.oldest_in_flight.arn,
              aws_cloudwatch_metric_alarm.failure_rate.arn,
              aws_cloudwatch_metric_alarm.device_message_backlog.arn,
              aws_cloudwatch_metric_alarm.escalation_failed.arn,
            ],
            [for name in sort(tolist(local.dead_letter_functions)) : aws_cloudwatch_metric_alarm.dead_letters[name].arn],
          )
        }
      },
    ],
  )
}

resource "aws_cloudwatch_dashboard" "fleet" {
  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}

# --- the gauge's schedule -------------------------------------------------------------------

# Counters say what happened; fleet-gauge says what is open now, every five minutes.
resource "aws_cloudwatch_event_rule" "fleet_gauge" {
  name                = "${var.name_prefix}-fleet-gauge"
  description         = "Runs ${local.function_names[local.fleet_gauge]}: rotations in flight and the oldest one's age, for the fleet dashboard."
  schedule_expression = "rate(5 minutes)"
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "fleet_gauge" {
  rule      = aws_cloudwatch_event_rule.fleet_gauge.name
  target_id = "fleet-gauge"
  arn       = aws_lambda_function.function[local.fleet_gauge].arn
}

resource "aws_lambda_permission" "fleet_gauge_schedule" {
  statement_id   = "AllowFleetGaugeSchedule"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function[local.fleet_gauge].function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.fleet_gauge.arn
  source_account = local.account
}

# --- alarms, to the alarm topic as the others (monitoring.tf) ---------------------------------

# Sustained throttling: the pacing is above what the account really allows. A Metrics Insights
# query sums ThrottledCalls over every API and function, so a new API needs no new alarm.
resource "aws_cloudwatch_metric_alarm" "throttling_sustained" {
  alarm_name          = "${var.name_prefix}-throttling-sustained"
  alarm_description   = "Rotor's functions saw more than ${var.throttled_calls_alarm_threshold} throttled AWS calls in each of three five-minute periods. The fleet dashboard's \"Throttled calls per API\" says which API; lower that bucket in api_quotas (or quota_safety_fraction), or find the other workload using the quota."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.throttled_calls_alarm_threshold
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "throttled"
    expression  = "SELECT SUM(ThrottledCalls) FROM SCHEMA(\"${local.metrics_namespace}\", Api, service)"
    period      = 300
    return_data = true
  }

  alarm_actions = [aws_sns_topic.alarms.arn]
  ok_actions    = [aws_sns_topic.alarms.arn]
  tags          = local.tags
}

# A rotation older than any healthy one: stuck in a step, or waiting on pacing far longer than
# planned. No data means the gauge did not run: that is worth knowing too (missing).
resource "aws_cloudwatch_metric_alarm" "oldest_in_flight" {
  alarm_name        = "${var.name_prefix}-oldest-in-flight"
  alarm_description = "The oldest in-flight rotation started more than ${local.oldest_in_flight_alarm_seconds} s ago. rotor status --status IN_PROGRESS lists the rotations; rotor trace --execution ARN shows where one waits."
  namespace         = local.metrics_namespace
  metric_name       = "OldestInFlightAgeSeconds"
  dimensions = {
    service = local.fleet_gauge
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.oldest_in_flight_alarm_seconds
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# The share of ended rotations that failed, per hour, from Step Functions' own counts (each
# failed rotation is one failed execution, already escalated one by one): a rate, so that a
# large audit's handful of offline devices does not page, but a systematic failure does.
resource "aws_cloudwatch_metric_alarm" "failure_rate" {
  alarm_name          = "${var.name_prefix}-failure-rate"
  alarm_description   = "More than ${var.failure_rate_alarm_percent}% of the rotations that ended in the last hour failed. The fleet dashboard's \"Failures by reason\" says why; rotor status --status FAILED lists them."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.failure_rate_alarm_percent
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "rate"
    expression  = "IF(failed + succeeded >= 10, 100 * failed / (failed + succeeded), 0)"
    label       = "failed rotations (%)"
    return_data = true
  }

  metric_query {
    id = "failed"
    metric {
      namespace   = "AWS/States"
      metric_name = "ExecutionsFailed"
      dimensions  = { StateMachineArn = local.state_machine_arn }
      stat        = "Sum"
      period      = 3600
    }
  }

  metric_query {
    id = "succeeded"
    metric {
      namespace   = "AWS/States"
      metric_name = "ExecutionsSucceeded"
      dimensions  = { StateMachineArn = local.state_machine_arn }
      stat        = "Sum"
      period      = 3600
    }
  }

  alarm_actions = [aws_sns_topic.alarms.arn]
  ok_actions    = [aws_sns_topic.alarms.arn]
  tags          = local.tags
}
