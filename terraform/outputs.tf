output "state_machine_arn" {
  description = "ARN of the rotate-device state machine (one execution per device rotation; the execution name is the rotation id)."
  value       = aws_sfn_state_machine.state_machine[local.wiring.stateMachine.name].arn
}

output "state_machine_console_url" {
  description = "Where to watch rotations: the state machine's executions in the Step Functions console."
  value       = "https://${local.region}.console.aws.amazon.com/states/home?region=${local.region}#/statemachines/view/${urlencode(aws_sfn_state_machine.state_machine[local.wiring.stateMachine.name].arn)}"
}

output "table_name" {
  description = "Name of the DynamoDB table with each thing's current rotation, the history and audit reports."
  value       = aws_dynamodb_table.rotations.name
}

output "audit_topic_arn" {
  description = "SNS topic Device Defender notifies when an audit completes; its notifications start rotations."
  value       = aws_sns_topic.audit.arn
}

output "escalation_topic_arn" {
  description = "SNS topic with one message per failed rotation; subscribe the people or tools that act on them."
  value       = aws_sns_topic.escalation.arn
}

output "audit_notifications_role_arn" {
  description = "Role Device Defender may use to publish to the audit topic (name it in an audit configuration managed outside this module)."
  value       = aws_iam_role.audit_notifications.arn
}

output "device_policy_name" {
  description = "IoT policy that grants a device the rotation topics; attach it to device certificates, or merge device_policy_document into your own device policy."
  value       = aws_iot_policy.device.name
}

output "device_policy_document" {
  description = "JSON of the device policy, for teams that merge its statements into their own device policy."
  value       = local.device_policy_document
}

output "function_names" {
  description = "Deployed Lambda function names, by wiring name."
  value       = { for name, fn in aws_lambda_function.function : name => fn.function_name }
}

output "rule_names" {
  description = "IoT topic rule names, by device → cloud message type."
  value       = { for type, rule in aws_iot_topic_rule.device_message : type => rule.name }
}

output "alarm_topic_arn" {
  description = "SNS topic of Rotor's alarms (dead letters waiting, an escalation that could not be published); subscribe on-call here. It is not the escalation topic, on purpose."
  value       = aws_sns_topic.alarms.arn
}

output "dead_letter_queue_urls" {
  description = "Dead-letter queue of each function that can give up on an event: the asynchronously invoked ones and device-message behind the rule queue (rotor dlq list|replay reads them)."
  value       = { for name, queue in aws_sqs_queue.dead_letter : name => queue.url }
}

output "device_message_queue_url" {
  description = "The rule queue: every device → cloud message waits here for device-message (its depth and age are on the fleet dashboard)."
  value       = aws_sqs_queue.rule_queue.url
}
