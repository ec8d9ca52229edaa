# One function per wiring entry, from the bundle `make build` wrote.

# Created before the functions so that Lambda never makes them itself without a retention.
resource "aws_cloudwatch_log_group" "function" {
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_lambda_function" "function" {
  for_each = local.wiring.functions

  function_name    = local.function_names[each.key]
  description      = each.value.description
  role             = aws_iam_role.function[each.key].arn
  filename         = "${local.artifacts_dir}/${each.key}.zip"
  source_code_hash = filebase64sha256("${local.artifacts_dir}/${each.key}.zip")
  runtime          = "nodejs22.x"
  handler          = "index.handler"
  # Graviton: about 20% cheaper per GB-second than x86 at equal or better speed, and the
  # bundles are pure JavaScript (no native modules), so nothing needs an x86 build.
  architectures = ["arm64"]
  timeout       = each.value.timeoutSeconds
  memory_size   = each.value.memoryMb
  # device-message has its own share of the account's concurrency (sqs.tf); -1 is Lambda's "none reserved".
  reserved_concurrent_executions = each.key == local.rule_queue_function ? local.device_message_reserved_concurrency : -1

  environment {
    variables = local.function_environment[each.key]
  }

  tracing_config {
    mode = "Active"
  }

  tags = local.tags

  depends_on = [
    aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function,
    aws_iam_role_policy.function_observability,
  ]
}

# SNS (and start-rotations itself) invoke these functions asynchronously. Lambda retries a failed event, then
# sends its invocation record (the original event, the error, the attempts) to the function's
# dead-letter queue instead of dropping it; `rotor dlq replay` gives it back to the function.
resource "aws_lambda_function_event_invoke_config" "async" {
  for_each = local.async_functions

  function_name                = aws_lambda_function.function[each.key].function_name
  maximum_retry_attempts       = var.async_maximum_retry_attempts
  maximum_event_age_in_seconds = var.async_maximum_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dead_letter[each.key].arn
    }
  }

  # Lambda checks at once that the function's role may send to the queue.
  depends_on = [aws_iam_role_policy.function_dead_letter]
}

# The rule queue's batches (sqs.tf) reach the function it feeds. ReportBatchItemFailures: a
# record the function fails on comes back alone, the others of its batch are deleted. The
# maximum concurrency caps how many invocations the mapping runs, so that a fleet's messages
# wait in the queue instead of taking all of the account's Lambda concurrency.
resource "aws_lambda_event_source_mapping" "rule_queue" {
  event_source_arn                   = aws_sqs_queue.rule_queue.arn
  function_name                      = aws_lambda_function.function[local.rule_queue_function].arn
  batch_size                         = local.rule_queue.batchSize
  maximum_batching_window_in_seconds = local.rule_queue.maximumBatchingWindowSeconds
  function_response_types            = ["ReportBatchItemFailures"]
  enabled                            = true

  scaling_config {
    maximum_concurrency = local.device_message_mapping_concurrency
  }

  lifecycle {
    precondition {
      condition     = local.device_message_reserved_concurrency == -1 || local.device_message_reserved_concurrency >= local.device_message_mapping_concurrency
      error_message = "device_message_reserved_concurrency (${local.device_message_reserved_concurrency}) is below the mapping's maximum concurrency (${local.device_message_mapping_concurrency}): Lambda would throttle the mapping's own batches. Raise it, or use -1 to reserve none."
    }
  }

  # Lambda checks at once that the function's role may poll the queue.
  depends_on = [aws_iam_role_policy.function_rule_queue]
}
