# Step Functions vends its logs; the /aws/vendedlogs/ prefix keeps the log group under the
# CloudWatch Logs resource policy size limit when many state machines log.
resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${local.state_machine_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_sfn_state_machine" "rotate_device" {
  name       = local.state_machine_name
  type       = "STANDARD" # waits of up to hours for a device: Express stops after 5 minutes
  role_arn   = aws_iam_role.state_machine.arn
  definition = local.state_machine_definition

  # Secure by default: state names, timings and errors, without inputs and outputs, which
  # carry task tokens and CSRs (sfn_log_include_execution_data turns them on to debug).
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = var.sfn_log_include_execution_data
    level                  = var.sfn_log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = local.tags

  # The definition names the functions by computed ARN (see locals.tf), so the dependency
  # that makes them exist first has to be stated.
  depends_on = [aws_lambda_function.function, aws_iam_role_policy.state_machine, aws_iam_role_policy.state_machine_observability]
}
