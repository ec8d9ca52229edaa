# Realistic values for what the mock aws provider would otherwise make up as random strings:
# the provider still validates ARNs and names under a mock, and the assertions compare
# rendered ARNs. Shared by every test file that uses mock_provider "aws".

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_region" {
  defaults = {
    name = "eu-west-1"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition  = "aws"
    dns_suffix = "amazonaws.com"
  }
}

mock_data "aws_iot_endpoint" {
  defaults = {
    endpoint_address = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
  }
}

mock_resource "aws_dynamodb_table" {
  defaults = {
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/rotor-rotations"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/rotor-mock"
  }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:rotor-mock"
  }
}

mock_resource "aws_iot_topic_rule" {
  defaults = {
    arn = "arn:aws:iot:eu-west-1:123456789012:rule/rotor_mock"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/rotor/mock"
  }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:rotor-mock-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/rotor-mock-dlq"
  }
}

mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:eu-west-1:123456789012:rotor-mock"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn    = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    key_id = "11111111-2222-3333-4444-555555555555"
  }
}

mock_resource "aws_cloudwatch_event_rule" {
  defaults = {
    arn = "arn:aws:events:eu-west-1:123456789012:rule/rotor-escalation-failed"
  }
}
