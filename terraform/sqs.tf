# One dead-letter queue per function that can give up on an event: each asynchronously invoked
# function (locals.tf async_functions; the on-failure destination Lambda sends an event to
# after its retries, lambda.tf), and the function the rule queue feeds (the queue's redrive
# target below). A dead letter is a device message or an audit page that nothing handled, so it
# is kept for the longest SQS allows and alarmed on as soon as one arrives (monitoring.tf).
resource "aws_sqs_queue" "dead_letter" {
  for_each = local.dead_letter_functions

  name                      = local.dead_letter_names[each.key]
  message_retention_seconds = 1209600 # 14 days, the SQS maximum
  # Encrypted at rest with SQS-owned keys: no key policy to keep in step with Lambda's role.
  sqs_managed_sse_enabled = true
  tags                    = local.tags
}

# Only over TLS, as for the topics.
resource "aws_sqs_queue_policy" "dead_letter" {
  for_each = local.dead_letter_functions

  queue_url = aws_sqs_queue.dead_letter[each.key].id
  policy    = local.dead_letter_queue_policies[each.key]
}

# --- the rule queue (issue 10 part 4) --------------------------------------------------------

variable "device_message_max_concurrency" {
  description = "How many device-message invocations the rule queue's event source mapping runs at once (2-1000). Messages beyond it wait in the queue instead of being throttled. Null means the wiring's default (wiring/wiring.json ruleQueue.maximumConcurrency)."
  type        = number
  default     = null

  validation {
    condition     = var.device_message_max_concurrency == null || try(var.device_message_max_concurrency >= 2 && var.device_message_max_concurrency <= 1000 && floor(var.device_message_max_concurrency) == var.device_message_max_concurrency, false)
    error_message = "device_message_max_concurrency must be a whole number from 2 to 1000 (the limits of an SQS event source mapping), or null."
  }
}

variable "device_message_reserved_concurrency" {
  description = "Concurrent executions reserved for device-message. Null (default): as many as the rule queue's event source mapping runs at once (device_message_max_concurrency), so that other functions taking the account's concurrency never throttle the mapping's batches, and device-message never takes more than that. -1: reserve none (for accounts whose unreserved concurrency cannot spare it: Lambda keeps 100 unreserved). Otherwise a whole number from the mapping's maximum concurrency to 1000."
  type        = number
  default     = null

  validation {
    condition     = var.device_message_reserved_concurrency == null || try(var.device_message_reserved_concurrency == -1 || (var.device_message_reserved_concurrency >= 2 && var.device_message_reserved_concurrency <= 1000 && floor(var.device_message_reserved_concurrency) == var.device_message_reserved_concurrency), false)
    error_message = "device_message_reserved_concurrency must be a whole number from 2 to 1000, -1 (reserve none), or null (as many as device_message_max_concurrency)."
  }
}

locals {
  device_message_mapping_concurrency = coalesce(var.device_message_max_concurrency, local.rule_queue.maximumConcurrency)
  # Reserved at least as high as the mapping runs: fewer would throttle its own batches back to the queue.
  device_message_reserved_concurrency = var.device_message_reserved_concurrency == null ? local.device_message_mapping_concurrency : var.device_message_reserved_concurrency
}

# Every device → cloud message: the IoT rules write it here (iot.tf), and the event source
# mapping hands it to device-message in batches (lambda.tf). At fleet scale the messages wait
# here when Lambda's concurrency runs out, rather than being throttled away. A message the
# function fails on comes back after the visibility timeout (at least the function's timeout,
# so that no second invocation takes it meanwhile), and moves to the dead-letter queue after
# maxReceiveCount receives.
resource "aws_sqs_queue" "rule_queue" {
  name                       = local.rule_queue_name
  visibility_timeout_seconds = local.rule_queue.visibilityTimeoutSeconds
  message_retention_seconds  = local.rule_queue.messageRetentionSeconds
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[local.rule_queue_function].arn
    maxReceiveCount     = local.rule_queue.maxReceiveCount
  })

  tags = local.tags
}

# The dead-letter queue takes redriven messages from the rule queue and no other.
resource "aws_sqs_queue_redrive_allow_policy" "rule_queue_dead_letter" {
  queue_url = aws_sqs_queue.dead_letter[local.rule_queue_function].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.rule_queue.arn]
  })
}

resource "aws_sqs_queue_policy" "rule_queue" {
  queue_url = aws_sqs_queue.rule_queue.id
  policy    = local.rule_queue_policy
}
