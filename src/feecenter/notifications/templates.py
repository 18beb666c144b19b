"""Notification templates in zh-CN and en: plain ``str.format`` with named params.

Each template has, per locale, a subject (email subject, in-site title), a
body (email, in-site message) and a short SMS text. Rendering with a missing
param raises ``MissingTemplateParam``; extra params are ignored. Money is
passed as yuan strings (``money.format_yuan``), times as business-time text
(``clock.business_time_text``).

``service.notify`` fills in ``uin``, ``account_name`` and ``at`` (the time of
the event, default: now) when the caller does not give them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from feecenter.errors import InvalidInput

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
SMS_SIGNATURE = {"zh-CN": "【费用中心】", "en": "[Fee Center] "}

# How to pay: online recharge in the console (在线充值, RCH), or through the account
# manager, the platform crediting the payment. Bank remittance does not exist yet: not named.
_HOW_TO_PAY_ZH = (
    "付款方式：登录控制台，在「在线充值」页面通过微信支付、QQ钱包或网银充值；"
    "也可联系您的客户经理或平台客服付款，款项由平台入账到您的账号。\n"
    "入账后将优先偿还欠款；欠款结清后，因欠费停止的资源将自动恢复。")
_HOW_TO_PAY_EN = (
    "How to pay: recharge online in the console (Online recharge: WeChat Pay, QQ Wallet or "
    "online banking), or contact your account manager or the platform's customer service; "
    "the platform credits your payment to your account.\n"
    "Money credited repays the arrears first; once they are paid, resources stopped for "
    "arrears are restarted automatically.")
_SIGN_ZH = "\n\n费用中心"
_SIGN_EN = "\n\nFee Center"


class MissingTemplateParam(InvalidInput):
    code = "MissingTemplateParam"


@dataclass(frozen=True)
class Template:
    subject: str
    body: str
    sms: str


@dataclass(frozen=True)
class Rendered:
    template: str
    locale: str
    subject: str
    body: str
    sms: str


TEMPLATES: dict[str, dict[str, Template]] = {
    # ARR-3: entering arrears sends a dunning notice (催缴通知)
    "arrears_dunning": {
        "zh-CN": Template(
            subject="【催缴通知】您的账号 {uin} 已欠费 {amount} 元",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）于 {at} 进入欠费状态，当前欠费金额为 {amount} 元。\n"
                  "欠费期间无法购买新的资源。按量计费资源将按各产品的欠费策略处理：保护期内继续运行并计费，"
                  "保护期结束后停止服务（配置与数据保留），隔离期结束后资源及其数据将被永久删除。\n\n"
                  "请尽快结清欠款。\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}已欠费{amount}元，请尽快在控制台在线充值，以免资源停服及数据被删除。"),
        "en": Template(
            subject="[Payment due] Account {uin} is in arrears: CNY {amount}",
            body=("Dear {account_name},\n\n"
                  "Your account (UIN {uin}) went into arrears at {at} (Beijing time); "
                  "the amount owed is CNY {amount}.\n"
                  "While in arrears, nothing new can be bought. Pay-as-you-go resources follow "
                  "each product's arrears policy: during the protection period they keep running "
                  "and keep being charged; then the service stops (configuration and data are "
                  "kept); after the isolation period the resources and their data are deleted "
                  "for good.\n\n"
                  "Please pay the amount owed as soon as possible.\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms=("Account {uin} owes CNY {amount}. Please recharge online in the console, "
                 "or your resources will be stopped and deleted.")),
    },
    "arrears_stop_warning": {
        "zh-CN": Template(
            subject="【停服预警】您的账号 {uin} 欠费 {amount} 元，资源将于 {stop_at} 停止服务",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）仍欠费 {amount} 元。若在 {stop_at} 前未结清欠款，"
                  "您的按量计费资源将停止服务（停止计费，配置与数据保留）。\n\n"
                  + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}欠费{amount}元，资源将于{stop_at}停止服务，请尽快付款。"),
        "en": Template(
            subject="[Service stop warning] Account {uin} owes CNY {amount}; resources stop at "
                    "{stop_at}",
            body=("Dear {account_name},\n\n"
                  "Your account (UIN {uin}) still owes CNY {amount}. Unless it is paid before "
                  "{stop_at} (Beijing time), your pay-as-you-go resources will be stopped "
                  "(charging stops; configuration and data are kept).\n\n"
                  + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin} owes CNY {amount}; its resources stop at {stop_at}. "
                "Please pay."),
    },
    "resources_stopped": {
        "zh-CN": Template(
            subject="【停服通知】您的账号 {uin} 因欠费，资源已停止服务",
            body=("尊敬的 {account_name}：\n\n"
                  "由于您的账号（UIN：{uin}）欠费 {amount} 元，以下资源已于 {at} 停止服务并停止计费，"
                  "配置与数据暂时保留：\n{resources}\n\n"
                  "若在 {destroy_at} 前未结清欠款，这些资源及其数据将被永久删除。"
                  "结清欠款后资源将自动恢复服务。\n\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}欠费{amount}元，资源已停服，将于{destroy_at}删除，付款后自动恢复。"),
        "en": Template(
            subject="[Service stopped] Account {uin}: resources stopped for arrears",
            body=("Dear {account_name},\n\n"
                  "Because your account (UIN {uin}) owes CNY {amount}, these resources were "
                  "stopped at {at} (Beijing time); charging has stopped and their configuration "
                  "and data are kept for now:\n{resources}\n\n"
                  "Unless the arrears are paid before {destroy_at}, these resources and their "
                  "data will be deleted for good. Paying restores the service automatically.\n\n"
                  + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin} owes CNY {amount}: resources stopped, to be deleted at "
                "{destroy_at}. Paying restores them."),
    },
    "resources_destroy_warning": {
        "zh-CN": Template(
            subject="【删除预警】您的账号 {uin} 欠费资源将于 {destroy_at} 被永久删除",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）仍欠费 {amount} 元。以下已停服资源及其数据将于 {destroy_at} "
                  "被永久删除，且无法恢复：\n{resources}\n\n"
                  "请在此之前结清欠款以保留资源。\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}欠费{amount}元，已停服资源及数据将于{destroy_at}永久删除，请立即付款。"),
        "en": Template(
            subject="[Deletion warning] Account {uin}: resources will be deleted at {destroy_at}",
            body=("Dear {account_name},\n\n"
                  "Your account (UIN {uin}) still owes CNY {amount}. These stopped resources and "
                  "their data will be deleted for good at {destroy_at} (Beijing time) and cannot "
                  "be recovered:\n{resources}\n\n"
                  "Pay the arrears before then to keep them.\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin} owes CNY {amount}: stopped resources and data will be deleted "
                "at {destroy_at}. Pay now."),
    },
    "resources_destroyed": {
        "zh-CN": Template(
            subject="【资源删除通知】您的账号 {uin} 欠费资源已被删除",
            body=("尊敬的 {account_name}：\n\n"
                  "由于您的账号（UIN：{uin}）欠费未结清，以下资源及其数据已于 {at} 被永久删除：\n"
                  "{resources}\n\n"
                  "当前欠费金额为 {amount} 元，请尽快结清。\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}因欠费，资源及数据已被删除，当前欠费{amount}元，请尽快结清。"),
        "en": Template(
            subject="[Resources deleted] Account {uin}: resources deleted for arrears",
            body=("Dear {account_name},\n\n"
                  "Because the arrears of your account (UIN {uin}) were not paid, these "
                  "resources and their data were deleted for good at {at} (Beijing time):\n"
                  "{resources}\n\n"
                  "The amount owed is CNY {amount}; please pay it.\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin}: resources and data deleted for arrears; CNY {amount} still "
                "owed. Please pay it."),
    },
    "arrears_repaid_restored": {
        "zh-CN": Template(
            subject="【欠费结清】您的账号 {uin} 已结清欠款，资源已恢复",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）已于 {at} 结清欠款 {amount} 元。"
                  "以下因欠费停止的资源已自动恢复服务：\n{resources}\n\n"
                  "感谢您的支持。" + _SIGN_ZH),
            sms="您的账号{uin}已结清欠款{amount}元，停服资源已恢复。"),
        "en": Template(
            subject="[Arrears paid] Account {uin}: arrears paid, resources restored",
            body=("Dear {account_name},\n\n"
                  "The arrears of your account (UIN {uin}), CNY {amount}, were paid at {at} "
                  "(Beijing time). These resources stopped for arrears have been restarted:\n"
                  "{resources}\n\n"
                  "Thank you." + _SIGN_EN),
            sms="Account {uin}: arrears of CNY {amount} paid; stopped resources restored."),
    },
    # ARR-6: the operators' arrears measures, each notified to the account
    "arrears_measure_offline": {
        "zh-CN": Template(
            subject="【欠费处置】您的账号 {uin} 因欠费，全部服务已停止",
            body=("尊敬的 {account_name}：\n\n"
                  "由于您的账号（UIN：{uin}）欠费 {amount} 元，平台已于 {at} 停止该账号的全部服务"
                  "（包年包月与按量计费资源），停服期间不计费，配置与数据暂时保留：\n{resources}\n\n"
                  "原因：{reason}\n"
                  "结清欠款后资源将自动恢复服务；按量计费资源仍按其欠费策略的隔离期处理。\n\n"
                  + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}欠费{amount}元，平台已停止该账号全部服务，结清欠款后自动恢复。"),
        "en": Template(
            subject="[Arrears measure] Account {uin}: all services taken offline for arrears",
            body=("Dear {account_name},\n\n"
                  "Because your account (UIN {uin}) owes CNY {amount}, the platform took all of "
                  "its services offline at {at} (Beijing time), prepaid and pay-as-you-go; "
                  "nothing is charged while they are stopped, and their configuration and data "
                  "are kept for now:\n{resources}\n\n"
                  "Reason: {reason}\n"
                  "Paying the arrears restarts them automatically; pay-as-you-go resources "
                  "still follow their arrears policy's isolation period.\n\n"
                  + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin} owes CNY {amount}: all its services were taken offline. Paying "
                "restores them."),
    },
    "arrears_measure_reclaim": {
        "zh-CN": Template(
            subject="【欠费处置】您的账号 {uin} 因欠费，全部资源已被回收",
            body=("尊敬的 {account_name}：\n\n"
                  "由于您的账号（UIN：{uin}）欠费 {amount} 元，平台已于 {at} 回收该账号的全部资源，"
                  "资源及其数据已被永久删除，不进入回收站，且无法恢复；包年包月资源的剩余时长不予退费：\n"
                  "{resources}\n\n"
                  "原因：{reason}\n"
                  "欠款仍需结清。\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}欠费{amount}元，平台已回收全部资源，数据已删除，请尽快结清欠款。"),
        "en": Template(
            subject="[Arrears measure] Account {uin}: all resources reclaimed for arrears",
            body=("Dear {account_name},\n\n"
                  "Because your account (UIN {uin}) owes CNY {amount}, the platform reclaimed all "
                  "of its resources at {at} (Beijing time): they and their data were deleted for "
                  "good, without the recycle bin, and cannot be recovered; the unused time of "
                  "prepaid resources is not refunded:\n{resources}\n\n"
                  "Reason: {reason}\n"
                  "The arrears are still owed.\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin} owes CNY {amount}: all its resources were reclaimed and their "
                "data deleted. Please pay."),
    },
    "arrears_measure_damages": {
        "zh-CN": Template(
            subject="【违约金】您的账号 {uin} 被收取违约金 {amount} 元",
            body=("尊敬的 {account_name}：\n\n"
                  "平台已于 {at} 向您的账号（UIN：{uin}）收取违约金 {amount} 元："
                  "现金余额支付 {cash} 元，其余计入欠费。当前欠费金额为 {arrears} 元。\n\n"
                  "原因：{reason}\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}被收取违约金{amount}元，当前欠费{arrears}元，请登录控制台查看。"),
        "en": Template(
            subject="[Liquidated damages] Account {uin}: CNY {amount} charged",
            body=("Dear {account_name},\n\n"
                  "At {at} (Beijing time) the platform charged your account (UIN {uin}) "
                  "liquidated damages of CNY {amount}: CNY {cash} from the cash balance, the "
                  "rest as arrears. The amount owed is now CNY {arrears}.\n\n"
                  "Reason: {reason}\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin}: liquidated damages of CNY {amount} charged; CNY {arrears} owed "
                "now."),
    },
    "arrears_measure_set_off": {
        "zh-CN": Template(
            subject="【欠费抵扣】您的账号 {uin} 已用现金余额抵扣欠款 {amount} 元",
            body=("尊敬的 {account_name}：\n\n"
                  "平台已于 {at} 将您的账号（UIN：{uin}）中平台应付给您的款项（现金余额，"
                  "如欠费期间的退款）{amount} 元用于抵扣欠款：偿还欠费 {repaid} 元，"
                  "偿还垫付 {advances} 元。当前欠费金额为 {arrears} 元。" + _SIGN_ZH),
            sms="您的账号{uin}已用现金余额抵扣欠款{amount}元，当前欠费{arrears}元。"),
        "en": Template(
            subject="[Arrears set off] Account {uin}: CNY {amount} set off against arrears",
            body=("Dear {account_name},\n\n"
                  "At {at} (Beijing time) the platform set CNY {amount} it owed your account "
                  "(UIN {uin}) — its cash balance, such as a refund credited while in arrears — "
                  "off against what the account owes: CNY {repaid} repaid arrears, CNY "
                  "{advances} repaid advances. The amount owed is now CNY {arrears}." + _SIGN_EN),
            sms="Account {uin}: CNY {amount} of its cash set off against arrears; CNY "
                "{arrears} owed now."),
    },
    "balance_low": {
        "zh-CN": Template(
            subject="【余额预警】您的账号 {uin} 可用余额低于 {threshold} 元",
            body=("尊敬的 {account_name}：\n\n"
                  "截至 {at}，您的账号（UIN：{uin}）可用余额为 {available} 元，"
                  "已低于预警阈值 {threshold} 元。余额不足时按量计费资源将产生欠费，"
                  "请及时付款。\n\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}可用余额{available}元，低于预警阈值{threshold}元，请及时付款。"),
        "en": Template(
            subject="[Low balance] Account {uin}: available balance below CNY {threshold}",
            body=("Dear {account_name},\n\n"
                  "At {at} (Beijing time) the available balance of your account (UIN {uin}) "
                  "was CNY {available}, below your alert threshold of CNY {threshold}. "
                  "Pay-as-you-go resources run into arrears when the balance runs out; "
                  "please pay in time.\n\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin}: available balance CNY {available}, below CNY {threshold}. "
                "Please pay."),
    },
    # XTR-2: the daily balance warning: days left under the threshold, or the available
    # balance under the owner's amount ("—": not set, or no estimate)
    "balance_warning": {
        "zh-CN": Template(
            subject="【余额预警】您的账号 {uin} 可用余额 {available} 元，约可用 {days} 天",
            body=("尊敬的 {account_name}：\n\n"
                  "截至 {at}，您的账号（UIN：{uin}）可用余额为 {available} 元。"
                  "按近24小时按量计费消耗 {spent} 元估算，余额约可用 {days} 天。\n"
                  "您的预警设置：可用天数少于 {threshold_days} 天，或可用余额低于 {threshold} 元"
                  "时提醒（“—”表示未设置或无法估算），已触发。"
                  "余额耗尽后按量计费资源将产生欠费，请及时充值。\n\n" + _HOW_TO_PAY_ZH
                  + "\n可在控制台「概览」页修改预警设置。" + _SIGN_ZH),
            sms="您的账号{uin}可用余额{available}元，按近24小时消耗约可用{days}天，请及时充值。"),
        "en": Template(
            subject="[Balance warning] Account {uin}: available balance CNY {available}, "
                    "about {days} days left",
            body=("Dear {account_name},\n\n"
                  "At {at} (Beijing time) the available balance of your account (UIN {uin}) "
                  "was CNY {available}. At the last 24 hours' pay-as-you-go spending of CNY "
                  "{spent}, it lasts about {days} days.\n"
                  "Your warning settings: fewer than {threshold_days} days left, or an "
                  "available balance below CNY {threshold} (\"—\": not set, or no estimate); "
                  "one of them is met. Pay-as-you-go resources run into arrears when the "
                  "balance runs out; please recharge in time.\n\n" + _HOW_TO_PAY_EN
                  + "\nThe warning settings are on the Overview page of the console."
                  + _SIGN_EN),
            sms="Account {uin}: available balance CNY {available}, about {days} days left "
                "at the last 24 hours' spending. Please recharge."),
    },
    # RMT-4: a remittance waits for the payer to be registered (待签署 / 待确认)
    "remittance_pending": {
        "zh-CN": Template(
            subject="【汇款待处理】账号 {uin} 收到汇款 {amount} 元，状态：{state_zh}",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）收到付款人「{payer_name}」的对公汇款 {amount} 元"
                  "（银行流水号 {reference}），付款人与账号实名主体不一致，且未登记为付款人，"
                  "暂未入账（状态：{state_zh} / {state_en}）。\n\n"
                  "请在控制台「对公汇款」页面登记该付款人（签署第三方付款协议），然后申请重新审核；"
                  "审核通过后将入账到您的账号。" + _SIGN_ZH),
            sms="您的账号{uin}收到{payer_name}汇款{amount}元，{state_zh}：请登记付款人后申请重新审核。"),
        "en": Template(
            subject="[Remittance waiting] Account {uin} received CNY {amount}: {state_en}",
            body=("Dear {account_name},\n\n"
                  "Your account (UIN {uin}) received a corporate remittance of CNY {amount} "
                  "from \"{payer_name}\" (bank reference {reference}). The payer is neither the "
                  "account's verified entity nor a registered payer, so it is not credited yet "
                  "(state: {state_en} / {state_zh}).\n\n"
                  "Register the payer in the console (Corporate remittance: sign the "
                  "third-party payment agreement), then ask for re-verification; it is "
                  "credited once verified." + _SIGN_EN),
            sms="Account {uin}: remittance of CNY {amount} from {payer_name} is {state_en}; "
                "register the payer and ask for re-verification."),
    },
    # RMT-5: a re-verification failed (审核不通过); it can be asked again
    "remittance_review_failed": {
        "zh-CN": Template(
            subject="【汇款审核不通过】账号 {uin} 的汇款 {amount} 元",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）来自付款人「{payer_name}」的对公汇款 {amount} 元"
                  "（银行流水号 {reference}）审核不通过：银行侧付款人名称与账号实名主体及已登记的"
                  "付款人名称均不一致。\n\n"
                  "请核对并登记与银行流水一致的付款人名称后再次申请审核。" + _SIGN_ZH),
            sms="您的账号{uin}收到{payer_name}的汇款{amount}元审核不通过，请核对付款人名称后重新提交。"),
        "en": Template(
            subject="[Remittance review failed] Account {uin}: remittance of CNY {amount}",
            body=("Dear {account_name},\n\n"
                  "The corporate remittance of CNY {amount} from \"{payer_name}\" to your "
                  "account (UIN {uin}, bank reference {reference}) failed review: the payer "
                  "name on the bank side matches neither the verified entity nor any "
                  "registered payer name.\n\n"
                  "Register the payer name exactly as the bank shows it, then ask for "
                  "re-verification again." + _SIGN_EN),
            sms="Account {uin}: review of the CNY {amount} remittance from {payer_name} failed; "
                "check the payer name and resubmit."),
    },
    # SRV-2: each state change of a service request (工单) is notified
    "service_request_update": {
        "zh-CN": Template(
            subject="【工单通知】账号 {uin} 的工单 {request_id}（{kind_zh}）：{state_zh}",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）的工单 {request_id}（{kind_zh}）于 {at} 状态变为「{state_zh}」。\n"
                  "说明：{note}\n（English: {kind_en} - {state_en}）\n\n"
                  "请登录控制台，在「工单」页面查看详情。" + _SIGN_ZH),
            sms="您的账号{uin}的工单{request_id}（{kind_zh}）状态：{state_zh}。"),
        "en": Template(
            subject="[Service request] Account {uin}, no. {request_id} ({kind_en}): {state_en}",
            body=("Dear {account_name},\n\n"
                  "Service request {request_id} ({kind_en}) of your account (UIN {uin}) became "
                  "{state_en} at {at} (Beijing time).\nNote: {note}\n"
                  "(中文：{kind_zh}，{state_zh})\n\n"
                  "See the Service requests page of the console for details." + _SIGN_EN),
            sms="Account {uin}: service request {request_id} ({kind_en}) is {state_en}."),
    },
    # WDR-5: a payout failed; its money stays held until an operator pays it another
    # way or returns it to cash
    "withdrawal_failed": {
        "zh-CN": Template(
            subject="【提现通知】账号 {uin} 的提现 {withdrawal_id} 打款失败，待审核",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）的提现申请 {withdrawal_id} 于 {at} 有 {amount} 元打款失败，"
                  "原因：{note}。\n该笔款项仍为冻结状态，不会丢失，也不会重复打款。\n\n"
                  "请登录控制台，在「工单」页面提交「提现打款失败」工单，并上传证明材料（销户证明、"
                  "控制台截图、充值凭证）；审核后平台将改为线下打款到您指定的银行账户，或退回现金余额。"
                  + _SIGN_ZH),
            sms="您的账号{uin}的提现{withdrawal_id}有{amount}元打款失败，款项已冻结，请在控制台提交工单处理。"),
        "en": Template(
            subject="[Withdrawal] Account {uin}: payout of withdrawal {withdrawal_id} failed, "
                    "under review",
            body=("Dear {account_name},\n\n"
                  "CNY {amount} of withdrawal {withdrawal_id} of your account (UIN {uin}) could not "
                  "be paid out at {at} (Beijing time). Reason: {note}.\nThe money stays held: it is "
                  "neither lost nor paid twice.\n\n"
                  "File a \"failed payout\" service request in the console with proof (account "
                  "closure certificate, console screenshot, recharge voucher); after review the "
                  "platform pays it to a bank account you name or returns it to your cash balance."
                  + _SIGN_EN),
            sms="Account {uin}: CNY {amount} of withdrawal {withdrawal_id} failed to pay out and "
                "is held; file a service request in the console."),
    },
    # INV-6: a reversal (退票) submitted, released (the red invoice made) or rejected
    "invoice_reversal_update": {
        "zh-CN": Template(
            subject="【退票通知】账号 {uin} 的退票申请 {reversal_id}：{state_zh}",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）对发票 {invoice_number}（金额 {amount} 元）的退票申请 "
                  "{reversal_id} 于 {at} 状态变为「{state_zh}」。\n说明：{note}\n"
                  "（English: {state_en}）\n\n"
                  "请登录控制台，在「发票管理」页面查看详情。" + _SIGN_ZH),
            sms="您的账号{uin}的退票申请{reversal_id}（发票{invoice_number}）状态：{state_zh}。"),
        "en": Template(
            subject="[Invoice reversal] Account {uin}, reversal {reversal_id}: {state_en}",
            body=("Dear {account_name},\n\n"
                  "Reversal {reversal_id} of invoice {invoice_number} (CNY {amount}) of your "
                  "account (UIN {uin}) became {state_en} at {at} (Beijing time).\n"
                  "Note: {note}\n(中文：{state_zh})\n\n"
                  "See the Invoices page of the console for details." + _SIGN_EN),
            sms="Account {uin}: reversal {reversal_id} of invoice {invoice_number} is "
                "{state_en}."),
    },
    # RNW-6: a prepaid resource not renewed is stopped into the recycle bin ...
    "renewal_stopped": {
        "zh-CN": Template(
            subject="【到期停服】您的账号 {uin} 有 {count} 个包年包月资源已到期停止服务",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）的以下包年包月资源已到期且未续费，已停止服务并放入回收站，"
                  "配置与数据暂时保留（到期时间 → 释放时间）：\n{resources}\n\n"
                  "在释放时间之前续费即可恢复，新的服务期从原到期时间起算；"
                  "到达释放时间后，资源及其数据将被永久删除，无法恢复。" + _SIGN_ZH),
            sms="您的账号{uin}有{count}个资源已到期停服，进入回收站，释放前续费可恢复，请登录控制台查看。"),
        "en": Template(
            subject="[Expired] Account {uin}: {count} prepaid resource(s) expired and stopped",
            body=("Dear {account_name},\n\n"
                  "These prepaid resources of your account (UIN {uin}) expired without being "
                  "renewed: they were stopped and moved to the recycle bin; their configuration "
                  "and data are kept for now (expiry → release time, Beijing time):\n"
                  "{resources}\n\n"
                  "Renewing one before its release time restores it, its new term counting from "
                  "the original expiry; at the release time the resource and its data are "
                  "deleted for good." + _SIGN_EN),
            sms="Account {uin}: {count} resource(s) expired and stopped (recycle bin). Renew "
                "before release to restore them."),
    },
    # ... and released with its data once its recovery period is over
    "renewal_released": {
        "zh-CN": Template(
            subject="【资源释放通知】您的账号 {uin} 有 {count} 个到期资源已被释放",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）的以下到期未续费的资源回收期已满，已于 {at} 释放，"
                  "资源及其数据已被永久删除（原到期时间）：\n{resources}" + _SIGN_ZH),
            sms="您的账号{uin}有{count}个到期未续费的资源回收期已满，资源及数据已被释放。"),
        "en": Template(
            subject="[Released] Account {uin}: {count} expired resource(s) released",
            body=("Dear {account_name},\n\n"
                  "The recovery period of these expired, unrenewed resources of your account "
                  "(UIN {uin}) is over: they were released at {at} (Beijing time) and their data "
                  "deleted for good (original expiry):\n{resources}" + _SIGN_EN),
            sms="Account {uin}: {count} expired resource(s) released after their recovery "
                "period; their data is deleted."),
    },
    # RNW-3/RNW-4: the expiry reminder (到期提醒) of resources without auto-renewal
    "renewal_expiry_reminder": {
        "zh-CN": Template(
            subject="【到期提醒】您的账号 {uin} 有 {count} 个包年包月资源即将到期或已到期",
            body=("尊敬的 {account_name}：\n\n"
                  "截至 {day}，您的账号（UIN：{uin}）以下包年包月资源未开启自动续费，即将到期或已到期"
                  "（资源 ID | 产品 | 地域 | 到期时间 | 释放时间，北京时间）：\n{resources}\n\n"
                  "到期后资源将停止服务并进入回收站，回收站期满后资源及其数据将被释放且无法恢复。"
                  "如需继续使用，请在控制台「续费管理」页面手动续费或开启自动续费。" + _SIGN_ZH),
            sms="您的账号{uin}有{count}个包年包月资源即将到期或已到期，到期后将停服并按期释放，请及时续费。"),
        "en": Template(
            subject="[Expiry reminder] Account {uin}: {count} prepaid resources expire soon "
                    "or have expired",
            body=("Dear {account_name},\n\n"
                  "As of {day}, these prepaid resources of your account (UIN {uin}) have no "
                  "auto-renewal and expire soon or have expired (resource ID | product | "
                  "region | expires | released, Beijing time):\n{resources}\n\n"
                  "At expiry a resource stops and goes to the recycle bin; when that period "
                  "ends, it is released with its data and cannot be recovered. To keep it, "
                  "renew it or turn on auto-renewal on the Renewal management page of the "
                  "console." + _SIGN_EN),
            sms="Account {uin}: {count} prepaid resources expire soon or have expired; they "
                "stop and are later released. Please renew."),
    },
    # RNW-3: the balance does not cover the auto-renewals due (提醒充值)
    "renewal_recharge_reminder": {
        "zh-CN": Template(
            subject="【充值提醒】您的账号 {uin} 余额不足以自动续费 {count} 个资源",
            body=("尊敬的 {account_name}：\n\n"
                  "截至 {day}，您的账号（UIN：{uin}）可用于付款的余额为 {available} 元，"
                  "不足以支付以下已开启自动续费的资源的续费（共 {amount} 元；资源 ID | 产品 | 地域 | "
                  "到期时间 | 续费金额（元），北京时间）：\n{resources}\n\n"
                  "自动续费在到期日进行；余额不足时资源将停止服务并进入回收站，期满后被释放。"
                  "请及时充值。\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}余额{available}元，不足以自动续费{count}个资源（需{amount}元），请及时充值。"),
        "en": Template(
            subject="[Recharge reminder] Account {uin}: the balance does not cover the "
                    "auto-renewal of {count} resources",
            body=("Dear {account_name},\n\n"
                  "As of {day}, the balance your account (UIN {uin}) can pay with is CNY "
                  "{available}, which does not cover the renewal of these resources with "
                  "auto-renewal on (CNY {amount} in all; resource ID | product | region | "
                  "expires | renewal in CNY, Beijing time):\n{resources}\n\n"
                  "Auto-renewal happens on the expiry day; without enough balance the "
                  "resources stop, go to the recycle bin and are released when it ends. "
                  "Please recharge in time.\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin}: balance CNY {available} does not cover auto-renewing {count} "
                "resources (CNY {amount}). Please recharge."),
    },
    # RNW-3: one reminder a day: the recharge reminder with the expiry reminder's list
    "renewal_reminder": {
        "zh-CN": Template(
            subject="【续费提醒】您的账号 {uin} 余额不足以自动续费 {count} 个资源",
            body=("尊敬的 {account_name}：\n\n"
                  "截至 {day}，您的账号（UIN：{uin}）可用于付款的余额为 {available} 元，"
                  "不足以支付以下已开启自动续费的资源的续费（共 {amount} 元；资源 ID | 产品 | 地域 | "
                  "到期时间 | 续费金额（元），北京时间）：\n{resources}\n\n"
                  "另有 {expiring_count} 个资源未开启自动续费或已停止，到期后停止服务并进入回收站，期满释放"
                  "（资源 ID | 产品 | 地域 | 到期时间 | 释放时间，北京时间）：\n{expiring}\n\n"
                  "自动续费在到期日进行；余额不足时资源将停止服务并进入回收站，期满后被释放。"
                  "请及时充值。\n" + _HOW_TO_PAY_ZH + _SIGN_ZH),
            sms="您的账号{uin}余额{available}元，不足以自动续费{count}个资源（需{amount}元），"
                "另有{expiring_count}个资源即将到期，请及时充值或续费。"),
        "en": Template(
            subject="[Renewal reminder] Account {uin}: the balance does not cover the "
                    "auto-renewal of {count} resources",
            body=("Dear {account_name},\n\n"
                  "As of {day}, the balance your account (UIN {uin}) can pay with is CNY "
                  "{available}, which does not cover the renewal of these resources with "
                  "auto-renewal on (CNY {amount} in all; resource ID | product | region | "
                  "expires | renewal in CNY, Beijing time):\n{resources}\n\n"
                  "Also, {expiring_count} resources have no auto-renewal or are stopped: they "
                  "stop at expiry, go to the recycle bin and are released when it ends "
                  "(resource ID | product | region | expires | released, Beijing time):\n"
                  "{expiring}\n\n"
                  "Auto-renewal happens on the expiry day; without enough balance the "
                  "resources stop, go to the recycle bin and are released when it ends. "
                  "Please recharge in time.\n" + _HOW_TO_PAY_EN + _SIGN_EN),
            sms="Account {uin}: balance CNY {available} does not cover auto-renewing {count} "
                "resources (CNY {amount}); {expiring_count} more expire. Please recharge or renew."),
    },
    # RNW-1: a prepaid price change is announced before it applies
    "renewal_price_change": {
        "zh-CN": Template(
            subject="【价格调整通知】账号 {uin}：{product} {item}（{region}）包年包月价格将于 {starts_at} 调整",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）使用的 {product} {item}（地域 {region}）包年包月刊例价"
                  "将自 {starts_at}（北京时间）起由每单位每月 {old_price} 元调整为 {new_price} 元。"
                  "新价格适用于此后的新购与续费（含自动续费），当前周期不受影响；"
                  "您的折扣或合同价按原约定执行。\n受影响的资源：\n{resources}" + _SIGN_ZH),
            sms="您的账号{uin}的{product} {item}（{region}）包年包月价格将于{starts_at}由{old_price}元调整为"
                "{new_price}元/单位/月。"),
        "en": Template(
            subject="[Price change] Account {uin}: prepaid price of {product} {item} ({region}) changes on "
                    "{starts_at}",
            body=("Dear {account_name},\n\n"
                  "From {starts_at} (Beijing time), the prepaid list price of {product} {item} "
                  "in region {region}, used by your account (UIN {uin}), changes from CNY "
                  "{old_price} to CNY {new_price} per unit per month. The new price applies "
                  "to purchases and renewals (auto-renewals too) from then on; current terms "
                  "are not affected, and your discount or contract price applies as agreed.\n"
                  "Resources affected:\n{resources}" + _SIGN_EN),
            sms="Account {uin}: prepaid price of {product} {item} ({region}) changes from CNY "
                "{old_price} to {new_price} per unit per month on {starts_at}."),
    },
    # ACC-5: the account was cancelled (注销)
    "account_cancelled": {
        "zh-CN": Template(
            subject="【账号注销】账号 {uin} 已注销",
            body=("尊敬的 {account_name}：\n\n"
                  "您的账号（UIN：{uin}）已于 {at} 注销。账号的登录与 API 调用已停止，"
                  "全部 API 密钥已停用。赠送金余额 {gift} 元已按规则作废。\n"
                  "如非本人操作，请立即联系平台客服。" + _SIGN_ZH),
            sms="您的账号{uin}已注销，登录与API调用已停止。如非本人操作请联系客服。"),
        "en": Template(
            subject="[Account cancelled] Account {uin} is cancelled",
            body=("Dear {account_name},\n\n"
                  "Your account (UIN {uin}) was cancelled at {at} (Beijing time). Its logins "
                  "and API calls are stopped and every API key is disabled. The gift balance "
                  "of {gift} yuan is forfeited.\n"
                  "If you did not do this, contact the platform's customer service at once."
                  + _SIGN_EN),
            sms="Account {uin} is cancelled: logins and API calls are stopped."),
    },
}


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def params_of(code: str) -> frozenset[str]:
    """The named params a template needs (the same in every locale)."""
    template = _get(code, DEFAULT_LOCALE)
    return frozenset(_fields(template.subject) | _fields(template.body) | _fields(template.sms))


def _get(code: str, locale: str) -> Template:
    by_locale = TEMPLATES.get(code)
    if by_locale is None:
        raise InvalidInput(f"通知模板不存在：{code}", f"unknown notification template: {code}",
                           field="template")
    if locale not in by_locale:
        raise InvalidInput(f"不支持的语言：{locale}", f"unsupported locale: {locale}",
                           field="locale")
    return by_locale[locale]


def render(code: str, locale: str, params: dict) -> Rendered:
    """Render one template in one locale; a missing param raises MissingTemplateParam."""
    template = _get(code, locale)
    missing = sorted(params_of(code) - set(params))
    if missing:
        raise MissingTemplateParam(f"通知模板 {code} 缺少参数：{', '.join(missing)}",
                                   f"template {code} is missing params: {', '.join(missing)}",
                                   field="params", missing=missing)
    values = {k: ("" if v is None else v) for k, v in params.items()}
    return Rendered(template=code, locale=locale,
                    subject=template.subject.format(**values),
                    body=template.body.format(**values),
                    sms=SMS_SIGNATURE[locale] + template.sms.format(**values))


def render_bilingual(code: str, params: dict) -> tuple[str, str]:
    """Title and body of an in-site message: zh first, then en."""
    zh, en = render(code, "zh-CN", params), render(code, "en", params)
    return f"{zh.subject} / {en.subject}", f"{zh.body}\n\n— — —\n\n{en.body}"
