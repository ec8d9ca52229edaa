# The server trust-store update (trust.tf, protocol v1.2): the state machine rendered from the
# wiring with the trust settings, a role that may invoke only its own functions, the rules for
# trust_ack / trust_err, and publishing trust_req only, for trust-request alone.

mock_provider "aws" {
  source = "./tests/mocks"
}

run "trust_update_state_machine" {
  command = apply

  variables {
    trust_ack_timeout_seconds    = 600
    trust_request_retries        = 2
    trust_retry_interval_seconds = 120
  }

  assert {
    condition = (
      jsondecode(aws_sfn_state_machine.state_machine["trust-update"].definition).States["Send trust request"].TimeoutSeconds == 600 &&
      jsondecode(aws_sfn_state_machine.state_machine["trust-update"].definition).States["Send trust request"].Retry[0].MaxAttempts == 2 &&
      jsondecode(aws_sfn_state_machine.state_machine["trust-update"].definition).States["Send trust request"].Retry[0].IntervalSeconds == 120 &&
      jsondecode(aws_sfn_state_machine.state_machine["trust-update"].definition).States["Send trust request"].Parameters.FunctionName == local.function_arns["trust-request"]
    )
    error_message = "The trust-update definition must carry the trust settings and invoke trust-request by its ARN."
  }

  assert {
    condition = alltrue([
      for statement in jsondecode(local.state_machine_policies["trust-update"]).Statement :
      !contains(statement.Action, "lambda:InvokeFunction") || jsonencode(statement.Resource) == jsonencode(sort([local.function_arns["trust-record"], local.function_arns["trust-request"]]))
    ])
    error_message = "The trust-update role may invoke trust-request and trust-record only."
  }

  assert {
    condition = (
      aws_iot_topic_rule.device_message["trust_ack"].sql == "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, topic() AS topic, timestamp() AS receivedAt FROM 'management/topic/+/trust_ack'" &&
      aws_iot_topic_rule.device_message["trust_err"].sql == "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, topic() AS topic, timestamp() AS receivedAt FROM 'management/topic/+/trust_err'"
    )
    error_message = "trust_ack and trust_err must reach device-message through their rules, with principal()."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(local.function_policies["trust-request"]).Statement :
      contains(statement.Action, "iot:Publish") && length(statement.Resource) == 1 && endswith(statement.Resource[0], ":topic/management/topic/*/trust_req")
    ])
    error_message = "trust-request may publish trust_req only."
  }

  assert {
    condition = alltrue(flatten([
      for name, policy in local.function_policies : [
        for statement in jsondecode(policy).Statement : [
          for resource in statement.Resource : !endswith(resource, "/trust_req") || name == "trust-request"
        ] if contains(statement.Action, "iot:Publish")
      ]
    ]))
    error_message = "No function but trust-request may publish trust_req."
  }
}

run "trust_settings_refused" {
  command = plan

  variables {
    trust_request_retries = 11
  }

  expect_failures = [var.trust_request_retries]
}
