# Rotor rotates the X.509 certificates of an AWS IoT fleet before they expire. This module
# deploys everything it needs in one account and region. It does not configure the aws
# provider: the caller's provider (region, credentials, default_tags) is used as is.
#
# The file split: locals.tf reads wiring/wiring.json (the one description of functions,
# permissions, rules and settings) and derives names, ARNs and policies from it; the other
# files hold one AWS service each; iam.tf holds every role and policy so that a security
# review reads one file.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The ATS data endpoint: the functions publish to devices through it (iot-data-plane).
data "aws_iot_endpoint" "data" {
  endpoint_type = "iot:Data-ATS"
}
