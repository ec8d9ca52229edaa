# One dead-letter queue per asynchronously invoked function (locals.tf async_functions): the
# on-failure destination Lambda sends an event to after its retries (lambda.tf). A dead letter
# is a device message or an audit page that nothing handled, so it is kept for the longest SQS
# allows and alarmed on as soon as one arrives (monitoring.tf).
resource "aws_sqs_queue" "dead_letter" {
  for_each = local.async_functions

  name                      = local.dead_letter_names[each.key]
  message_retention_seconds = 1209600 # 14 days, the SQS maximum
  # Encrypted at rest with SQS-owned keys: no key policy to keep in step with Lambda's role.
  sqs_managed_sse_enabled = true
  tags                    = local.tags
}

# Only over TLS, as for the topics.
resource "aws_sqs_queue_policy" "dead_letter" {
  for_each = local.async_functions

  queue_url = aws_sqs_queue.dead_letter[each.key].id
  policy    = local.dead_letter_queue_policies[each.key]
}
