-- Symbols the tests' force_actions rules key on.
config['regexp']['CT_TEST_SOFT_REJECT'] = {
  re = 'Subject=/ct-test-soft-reject/H',
  score = 0.0,
  description = 'ct-relay tests: answer soft reject',
}
config['regexp']['CT_TEST_GREYLIST'] = {
  re = 'Subject=/ct-test-greylist/H',
  score = 0.0,
  description = 'ct-relay tests: answer greylist',
}
