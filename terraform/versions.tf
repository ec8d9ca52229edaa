terraform {
  # 1.6 brought `terraform test`; 1.7 mock providers are only needed by the tests, not by users.
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.40 is the first release with everything used here (DynamoDB deletion protection,
      # Step Functions logging/tracing, IoT rule CloudWatch Logs error actions).
      version = ">= 5.40"
    }
  }
}
