terraform {
  # 1.9: a variable's validation may refer to other variables (private_ca_arn checks var.signer).
  # (1.6 brought `terraform test`, 1.7 its mock providers.)
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.40 is the first release with everything used here (DynamoDB deletion protection,
      # Step Functions logging/tracing, IoT rule CloudWatch Logs error actions).
      version = ">= 5.40"
    }
  }
}
