# Device Defender publishes its audit-completion notification to the audit topic; the state
# machine publishes one message per failed rotation to the escalation topic.

resource "aws_sns_topic" "audit" {
  name              = "${var.name_prefix}-audit"
  kms_master_key_id = local.sns_kms_key
  tags              = local.tags
}

resource "aws_sns_topic" "escalation" {
  name              = "${var.name_prefix}-escalations"
  kms_master_key_id = local.sns_kms_key
  tags              = local.tags
}

# Only Device Defender's notification role may publish audit results (a forged audit
# notification would start rotations), and only over TLS. The Allow alone is not enough in one
# account: any principal whose own IAM policy grants sns:Publish could still publish, so a
# Deny names everyone else (aws:PrincipalArn of an assumed role is the role's ARN).
locals {
  audit_topic_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DeviceDefenderPublishes"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.audit_notifications.arn }
        Action    = ["sns:Publish"]
        Resource  = [aws_sns_topic.audit.arn]
        Condition = { StringEquals = { "aws:PrincipalAccount" = local.account } }
      },
      {
        Sid       = "OnlyDeviceDefenderPublishes"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["sns:Publish"]
        Resource  = [aws_sns_topic.audit.arn]
        Condition = { StringNotEquals = { "aws:PrincipalArn" = aws_iam_role.audit_notifications.arn } }
      },
      merge(local.topic_deny_insecure_transport_statement, { Resource = [aws_sns_topic.audit.arn] }),
    ]
  })
}

resource "aws_sns_topic_policy" "audit" {
  arn    = aws_sns_topic.audit.arn
  policy = local.audit_topic_policy
}

resource "aws_sns_topic_subscription" "function" {
  for_each = local.subscriptions

  topic_arn = local.topic_arns[each.value.topic]
  protocol  = "lambda"
  endpoint  = aws_lambda_function.function[each.value.function].arn
}

resource "aws_lambda_permission" "sns" {
  for_each = local.subscriptions

  statement_id   = "AllowSns-${each.value.topic}"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function[each.value.function].function_name
  principal      = "sns.amazonaws.com"
  source_arn     = local.topic_arns[each.value.topic]
  source_account = local.account
}

resource "aws_sns_topic_subscription" "escalation_email" {
  for_each = toset(var.escalation_emails)

  topic_arn = aws_sns_topic.escalation.arn
  protocol  = "email"
  endpoint  = each.value
}
