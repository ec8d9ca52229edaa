# Plans the module with the real aws provider (fake credentials, no API calls), so that the
# provider's own schema and validation (ARN formats, enum values, name patterns) check what
# the module writes. The two data sources that would call AWS at plan time are overridden.

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "mock"
  secret_key                  = "mock"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

override_data {
  target = data.aws_caller_identity.current
  values = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/terraform-test"
    user_id    = "AIDAEXAMPLE"
  }
}

override_data {
  target = data.aws_iot_endpoint.data
  values = {
    endpoint_address = "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com"
  }
}

run "plans_with_the_real_provider" {
  command = plan

  variables {
    escalation_emails = ["ops@example.com"]
  }

  assert {
    condition     = local.region == "us-east-1" && local.partition == "aws"
    error_message = "Region and partition must come from the provider, not from AWS calls."
  }

  assert {
    condition     = length(aws_lambda_function.function) == length(local.wiring.functions) && length(aws_iam_role.function) == length(local.wiring.functions)
    error_message = "One function and one role per wiring function."
  }

  assert {
    condition     = aws_lambda_function.function["issue-certificate"].environment[0].variables.TABLE_NAME == "rotor-rotations"
    error_message = "The table reference must resolve at plan time."
  }

  assert {
    condition     = aws_lambda_function.function["deliver-certificate"].environment[0].variables.IOT_DATA_ENDPOINT == "https://a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com"
    error_message = "The IoT data endpoint must be the ATS endpoint over https."
  }

  assert {
    condition     = aws_iot_topic_rule.device_message["csr_res"].sql == "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, topic() AS topic, timestamp() AS receivedAt FROM 'management/topic/+/csr_res'"
    error_message = "The csr_res rule SQL differs from domain/topics.ts ruleSqlFor()."
  }

  assert {
    condition     = aws_sfn_state_machine.state_machine["rotate-device"].name == "rotor-rotate-device" && aws_sfn_state_machine.state_machine["rotate-device"].type == "STANDARD"
    error_message = "The state machine must be planned as STANDARD rotor-rotate-device."
  }

  assert {
    condition     = length(aws_cloudformation_stack.device_defender) == 1 && length(aws_sns_topic_subscription.escalation_email) == 1
    error_message = "The audit configuration stack and the e-mail subscription must be planned."
  }

  assert {
    condition = (
      length(aws_lambda_function_event_invoke_config.async) == 1 && length(aws_sqs_queue.dead_letter) == 2 &&
      aws_lambda_event_source_mapping.rule_queue.batch_size == 10 && aws_sqs_queue.rule_queue.name == "rotor-device-messages" &&
      length(aws_cloudwatch_metric_alarm.dead_letters) == 2 && aws_cloudwatch_metric_alarm.escalation_failed.metric_name == "TriggeredRules" &&
      aws_cloudwatch_event_rule.escalation_failed.name == "rotor-escalation-failed" && aws_sns_topic.alarms.name == "rotor-alarms"
    )
    error_message = "The dead-letter queues, their event invoke configs and alarms, and the EscalationFailed rule and alarm must be planned."
  }

  assert {
    condition     = output.device_policy_name == "rotor-device-rotation"
    error_message = "The device policy name output must be known at plan time."
  }
}
